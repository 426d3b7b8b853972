"""JSON values as the pipeline accepts them from producers and sends them to endpoints.

Python's json module reads and writes NaN and Infinity (and reads 1e999 as Infinity), which no
JSON parser elsewhere has to accept; and nothing bounds nesting, which every recursive step
downstream (encoding, form bodies) would pay for. So a value is checked once, where it enters:
no number that is not finite, no nesting deeper than MAX_DEPTH; a refusal names the field.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pipeline.errors import InvalidInput

MAX_DEPTH = 64


class _NotFinite(Exception):
    pass


def _refuse_constant(name: str) -> float:
    raise _NotFinite


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # 1e999: JSON syntax, but no double holds it
        raise _NotFinite
    return number


# Built once: json.loads and json.dumps build a new one per call for any argument but the defaults.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def loads(text: bytes | str, path: tuple[str, ...] = (), kind: type[InvalidInput] = InvalidInput) -> Any:
    """JSON text as Python values, checked as `check` does (NaN and nesting caught while parsing,
    so the common case walks nothing); ValueError if it is not JSON at all."""
    try:
        if isinstance(text, bytes):  # as json.loads reads bytes
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        value = _DECODER.decode(text)
    except _NotFinite:
        check(json.loads(text), path, kind)  # parsed again, leniently, only to name where it is
        raise kind(_field(path), "holds a number that is not finite") from None
    except RecursionError:
        raise kind(path[0] if path else "value", f"nested deeper than {MAX_DEPTH} levels") from None
    if text.count("[") + text.count("{") >= MAX_DEPTH - len(path):
        check(value, path, kind)  # only text with that many brackets can nest that deep
    return value


def check(value: Any, path: tuple[str, ...] = (), kind: type[InvalidInput] = InvalidInput) -> None:
    """Raises kind(<dotted path>, problem) for the first number that is not finite, or for nesting
    deeper than MAX_DEPTH (naming the top-level field). Iterative: depth costs no stack."""
    stack: list[tuple[Any, tuple[str, ...], int]] = [(value, path, len(path))]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise kind(_field(where), f"{item} is not a JSON number: NaN, Infinity and numbers beyond a "
                                      "double's range cannot be sent as JSON")
        if not isinstance(item, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            raise kind(where[0] if where else "value", f"nested deeper than {MAX_DEPTH} levels")
        children = item.items() if isinstance(item, dict) else enumerate(item)
        stack.extend((child, (*where, str(key)), depth + 1) for key, child in reversed(list(children)))


def _field(path: tuple[str, ...]) -> str:
    return ".".join(path) or "value"


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of a checked value: text stays text (not \\u escapes, which would double
    CJK text), except a lone surrogate (JSON allows "\\ud800"), which only an escape can carry."""
    try:
        return _ENCODER.encode(value).encode()
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(value).encode()
