"""Content filters: JSON rules over an event's data and metadata, as Convoy and Outpost offer.

A filter is an object whose keys are dotted paths into the event document (`data.user.age`,
`data.items.0.sku`) and whose values are a literal (an implicit `$eq`), an operator object
(`{"$gte": 18, "$lt": 65}`, every operator must hold) or a nested object of further paths
(`{"data": {"user": {"age": 18}}}` means `data.user.age`). `$and` and `$or` take lists of
filters. All entries of an object must hold. Rules are checked and compiled once; matching
never raises: a value of the wrong type simply does not match.

- `$eq` `$neq` compare JSON values: 1 equals 1.0, true never equals 1, objects compare deeply.
- `$gt` `$gte` `$lt` `$lte` compare numbers with numbers and strings with strings (code point
  order, so ISO-8601 times compare by time).
- `$in` `$nin` take a list; `$exist` takes true or false; `$regex` searches strings (Python `re`).
- Against an array value, `$eq` `$in` `$gt`.. `$regex` match when the array itself or any
  element does (MongoDB's rule); `$neq` and `$nin` are their exact negations.
- A missing path: `$exist: false`, `$neq` and `$nin` match; every other operator does not.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pipeline.errors import InvalidInput
from pipeline.documents import MISSING, lookup, parse_path

MAX_DEPTH = 16
Test = Callable[[Any], bool]  # a test of one value, which may be MISSING
Predicate = Callable[[Mapping[str, Any]], bool]  # a test of a whole document

OPERATORS = ("$eq", "$neq", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exist", "$regex")
COMBINATORS = ("$and", "$or")
_ORDER = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


class ContentFilter:
    """A compiled filter; `matches` is safe to call on any document."""

    __slots__ = ("rule", "_predicate")

    def __init__(self, rule: Mapping[str, Any], predicate: Predicate):
        self.rule = rule
        self._predicate = predicate

    def matches(self, document: Mapping[str, Any]) -> bool:
        return self._predicate(document)

    def __repr__(self) -> str:
        return f"ContentFilter({json.dumps(self.rule, default=str)})"


def compile_filter(rule: Any) -> ContentFilter:
    """Checks a rule and compiles it; InvalidInput("filter", "<where>: <problem>") otherwise."""
    return ContentFilter(rule, _all(_entries(rule, (), "", 1)))


def _refuse(where: str, problem: str) -> InvalidInput:
    return InvalidInput("filter", f"{where or '(root)'}: {problem}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _entries(rule: Any, prefix: tuple[str, ...], where: str, depth: int) -> list[Predicate]:
    """The predicates of one filter object, whose keys extend the path `prefix`."""
    if depth > MAX_DEPTH:
        raise _refuse(where, f"nesting is deeper than {MAX_DEPTH} levels")
    if not isinstance(rule, Mapping):
        raise _refuse(where, f"a filter must be a JSON object, not {_kind(rule)}")
    predicates = []
    for key, value in rule.items():
        if not isinstance(key, str) or not key:
            raise _refuse(where, f"key {key!r} is not a path")
        here = _join(where, key)
        if key in COMBINATORS:
            predicates.append(_combinator(key, value, prefix, here, depth))
        elif key.startswith("$"):
            raise _refuse(here, "unknown operator here; a field's operators go in an object under its path")
        else:
            predicates.extend(_field(prefix + (key,), value, here, depth))
    return predicates


def _combinator(key: str, value: Any, prefix: tuple[str, ...], where: str, depth: int) -> Predicate:
    if not isinstance(value, list) or not value:
        raise _refuse(where, f"needs a non-empty list of filters, not {_kind(value)}")
    branches = [_all(_entries(item, prefix, f"{where}[{i}]", depth + 1)) for i, item in enumerate(value)]
    if key == "$and":
        return lambda document: all(branch(document) for branch in branches)
    return lambda document: any(branch(document) for branch in branches)


def _field(keys: tuple[str, ...], value: Any, where: str, depth: int) -> list[Predicate]:
    """One path's condition: an operator object, a nested object of paths, or a literal."""
    if isinstance(value, Mapping) and value:
        dollar = [isinstance(key, str) and key.startswith("$") for key in value]
        if all(dollar):
            return [_on_path(keys, [_operator(op, operand, _join(where, op)) for op, operand in value.items()], where)]
        if any(dollar):
            raise _refuse(where, "an object cannot mix operators and field names")
        return _entries(value, keys, where, depth + 1)
    return [_on_path(keys, [_eq(value)], where)]


def _on_path(keys: tuple[str, ...], tests: list[Test], where: str) -> Predicate:
    try:
        path = parse_path(".".join(keys))
    except ValueError as exc:
        raise _refuse(where, str(exc)) from None
    if len(tests) == 1:
        (test,) = tests
        return lambda document: test(lookup(document, path))

    def predicate(document: Mapping[str, Any]) -> bool:
        value = lookup(document, path)  # once for all of the path's operators
        return all(test(value) for test in tests)

    return predicate


def _operator(op: str, operand: Any, where: str) -> Test:
    if op in ("$eq", "$neq"):
        test = _eq(operand)
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise _refuse(where, f"needs a list, not {_kind(operand)}")
        test = _in(operand)
    elif op in _ORDER:
        if not (_is_number(operand) or isinstance(operand, str)):
            raise _refuse(where, f"needs a number or a string, not {_kind(operand)}")
        test = _ordered(_ORDER[op], operand)
    elif op == "$exist":
        if not isinstance(operand, bool):
            raise _refuse(where, f"needs true or false, not {_kind(operand)}")
        return lambda value: (value is not MISSING) is operand
    elif op == "$regex":
        test = _regex(operand, where)
    elif op in COMBINATORS:
        raise _refuse(where, "combines whole filters and cannot be one field's operator")
    else:
        raise _refuse(where, f"unknown operator; known: {' '.join(OPERATORS)}")
    if op in ("$neq", "$nin"):
        return lambda value: not test(value)
    return test



def _candidates(value: Any) -> Iterator[Any]:
    """The value itself and, for an array, each element: what a positive operator may match."""
    if value is MISSING:
        return
    yield value
    if isinstance(value, list):
        yield from value


def _eq(operand: Any) -> Test:
    want = canonical(operand)
    scalar = not isinstance(operand, (Mapping, list))

    def test(value: Any) -> bool:
        # Skip canonicalising containers when the operand is a scalar: they cannot be equal.
        return any(canonical(v) == want for v in _candidates(value)
                   if not (scalar and isinstance(v, (Mapping, list))))

    return test


def _in(operands: list[Any]) -> Test:
    wanted = {canonical(item) for item in operands}
    return lambda value: any(canonical(v) in wanted for v in _candidates(value))


def _ordered(compare: Callable[[Any, Any], bool], operand: Any) -> Test:
    same_kind = _is_number if _is_number(operand) else (lambda v: isinstance(v, str))
    return lambda value: any(same_kind(v) and compare(v, operand) for v in _candidates(value))


def _regex(operand: Any, where: str) -> Test:
    if not isinstance(operand, str):
        raise _refuse(where, f"needs a string, not {_kind(operand)}")
    try:
        pattern = re.compile(operand)
    except re.error as exc:
        raise _refuse(where, f"invalid regular expression: {exc}") from None
    return lambda value: any(isinstance(v, str) and pattern.search(v) is not None for v in _candidates(value))


# What a canonical form starts with: the kind of JSON value, so that values of different kinds never meet.
BOOLEAN, NUMBER, OBJECT, ARRAY, SCALAR, OTHER = "boolean", "number", "object", "array", "scalar", "other"


def canonical(value: Any) -> Any:
    """A hashable form in which equal JSON values are equal: booleans apart from numbers,
    objects as sets of pairs. Python alone would call True equal to 1."""
    if isinstance(value, bool):
        return (BOOLEAN, value)
    if isinstance(value, (int, float)):
        return (NUMBER, value)
    if isinstance(value, Mapping):
        return (OBJECT, frozenset((key, canonical(item)) for key, item in value.items()))
    if isinstance(value, list):
        return (ARRAY, tuple(canonical(item) for item in value))
    if isinstance(value, str) or value is None:
        return (SCALAR, value)
    return (OTHER, id(value))  # not a JSON value: equal only to itself, and always hashable


def _all(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    return lambda document: all(predicate(document) for predicate in predicates)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return "a number" if _is_number(value) else names.get(type(value), type(value).__name__)
