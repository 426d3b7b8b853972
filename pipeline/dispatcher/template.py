"""Parameter templates: map an event's fields into the payload a webhook sends.

A template is a JSON value rendered against the event document (see
`pipeline.documents.event_document`); arrays and objects render element by element,
object keys as written. In strings, `{{ path }}` is a dotted path into the document:

- a string that is exactly one placeholder takes the value with its JSON type (a number stays a
  number, an object an object); a missing path gives null;
- placeholders inside text interpolate the value's text: strings as they are, null and missing
  paths as "", anything else as compact JSON (`7`, `true`, `{"a":1}`);
- a lone `}}` is plain text; to send a literal `{{`, wrap the value in `$literal`.

Objects with a `$` key are special, and take only the options shown:

- `{"$hash": "md5"|"crc32"|"sha1"|"sha256", "of": [path, ...], "separator": ""}`: the lower-case
  hex digest of the values' text (as above) joined by the separator and encoded as UTF-8;
  crc32 is the 8 hex digits of the unsigned CRC-32 (zlib's), zero-padded.
- `{"$date": path, "format": "%Y-%m-%d %H:%M:%S"}`: the value as a UTC time, formatted by
  strftime. An ISO-8601 string (a time without an offset is taken as UTC) or a number of epoch
  seconds; a number of 1e11 or more is read as milliseconds. Anything else renders as null.
- `{"$literal": value}`: the value as it is, placeholders and `$` keys untouched.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import zlib
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from pipeline import json_values
from pipeline.errors import InvalidInput
from pipeline.documents import MISSING, Path, lookup, parse_path

MAX_DEPTH = 32
Node = Callable[[Mapping[str, Any]], Any]

HASHES: dict[str, Callable[[bytes], str]] = {
    # md5 and sha1 name fields here, they protect nothing: allowed where FIPS forbids them for security.
    "md5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "crc32": lambda data: f"{zlib.crc32(data):08x}",
    "sha1": lambda data: hashlib.sha1(data, usedforsecurity=False).hexdigest(),
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
}
# strftime directives that every platform's C library knows; others vary or pass through silently.
DATE_DIRECTIVES = set("aAwdbBmyYHIpMSfzZjUWcxXGuV%")


class Template:
    """A compiled template; `render` never raises on any document."""

    __slots__ = ("source", "_node")

    def __init__(self, source: Any, node: Node):
        self.source = source
        self._node = node

    def render(self, document: Mapping[str, Any]) -> Any:
        return self._node(document)


def compile_template(template: Any) -> Template:
    """Checks a template and compiles it; InvalidInput("template", "<json pointer>: <problem>") otherwise."""
    return Template(template, _node(template, "", 1))


def as_text(value: Any) -> str:
    """A value's text where it is interpolated, hashed or sent as a form field."""
    if isinstance(value, str):
        return value
    if value is None or value is MISSING:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _refuse(pointer: str, problem: str) -> InvalidInput:
    return InvalidInput("template", f"{pointer or '(root)'}: {problem}")


def _child(pointer: str, key: str | int) -> str:
    return f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"  # RFC 6901 escaping


def _node(value: Any, pointer: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise _refuse(pointer, f"nesting is deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return _string(value, pointer)
    if isinstance(value, list):
        items = [_node(item, _child(pointer, i), depth + 1) for i, item in enumerate(value)]
        return lambda document: [item(document) for item in items]
    if isinstance(value, Mapping):
        if any(isinstance(key, str) and key.startswith("$") for key in value):
            return _special(value, pointer)
        return _object(value, pointer, depth)
    if isinstance(value, float) and not math.isfinite(value):
        raise _refuse(pointer, f"{value} is not a JSON number")
    if value is None or isinstance(value, (bool, int, float)):
        return lambda document: value
    raise _refuse(pointer, f"a {type(value).__name__} is not a JSON value")


def _object(value: Mapping[str, Any], pointer: str, depth: int) -> Node:
    fields = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _refuse(pointer, f"key {key!r} is not a string")
        fields[key] = _node(item, _child(pointer, key), depth + 1)
    return lambda document: {key: field(document) for key, field in fields.items()}


def _string(text: str, pointer: str) -> Node:
    parts = _parts(text, pointer)
    if not any(isinstance(part, tuple) for part in parts):
        return lambda document: text
    if len(parts) == 1:
        (path,) = parts
        return lambda document: _value(document, path)  # type: ignore[arg-type]
    return lambda document: "".join(
        part if isinstance(part, str) else as_text(lookup(document, part)) for part in parts)


def _parts(text: str, pointer: str) -> list[str | Path]:
    """Text split into literal pieces and placeholder paths."""
    parts: list[str | Path] = []
    position = 0
    while (start := text.find("{{", position)) != -1:
        end = text.find("}}", start + 2)
        if end == -1:
            raise _refuse(pointer, f"unclosed {{{{ at character {start}")
        if start > position:
            parts.append(text[position:start])
        parts.append(_path(text[start + 2:end].strip(), pointer, "placeholder"))
        position = end + 2
    if position < len(text):
        parts.append(text[position:])
    return parts


def _path(text: Any, pointer: str, what: str) -> Path:
    if not isinstance(text, str):
        raise _refuse(pointer, f"a {what} path must be a string, not {type(text).__name__}")
    if "{" in text or "}" in text:
        raise _refuse(pointer, f"{what} path {text!r} cannot contain braces")
    try:
        return parse_path(text)
    except ValueError as exc:
        raise _refuse(pointer, f"{what}: {exc}") from None


def _value(document: Mapping[str, Any], path: Path) -> Any:
    value = lookup(document, path)
    return None if value is MISSING else value


def _special(spec: Mapping[str, Any], pointer: str) -> Node:
    dollars = [key for key in spec if isinstance(key, str) and key.startswith("$")]
    unknown = [key for key in dollars if key not in SPECIALS]
    if unknown:
        raise _refuse(_child(pointer, unknown[0]),
                      "unknown special key; use $hash, $date or $literal (wrap other $ keys in $literal)")
    if len(dollars) > 1:
        raise _refuse(pointer, f"an object takes one special key, not {' and '.join(dollars)}")
    (key,) = dollars
    options, build = SPECIALS[key]
    for name in spec:
        if name != key and name not in options:
            raise _refuse(_child(pointer, name), f"is not an option of {key}; it takes {', '.join(sorted(options)) or 'none'}")
    return build(spec, pointer)


def _hash(spec: Mapping[str, Any], pointer: str) -> Node:
    algorithm = spec["$hash"]
    if algorithm not in HASHES:
        raise _refuse(_child(pointer, "$hash"), f"unknown hash algorithm {algorithm!r}; use {', '.join(HASHES)}")
    fields = spec.get("of")
    if not isinstance(fields, list) or not fields:
        raise _refuse(_child(pointer, "of"), "needs a non-empty list of paths")
    paths = [_path(field, _child(_child(pointer, "of"), i), "hashed field") for i, field in enumerate(fields)]
    separator = spec.get("separator", "")
    if not isinstance(separator, str):
        raise _refuse(_child(pointer, "separator"), "must be a string")
    digest = HASHES[algorithm]
    # A lone surrogate (JSON allows "\ud800") cannot be UTF-8: replaced rather than failing the delivery.
    return lambda document: digest(
        separator.join(as_text(lookup(document, path)) for path in paths).encode(errors="replace"))


def _date(spec: Mapping[str, Any], pointer: str) -> Node:
    path = _path(spec["$date"], _child(pointer, "$date"), "date")
    date_format = spec.get("format")
    _check_date_format(date_format, _child(pointer, "format"))

    def render(document: Mapping[str, Any]) -> str | None:
        moment = to_datetime(lookup(document, path))
        try:
            return None if moment is None else moment.strftime(date_format)
        except (ValueError, UnicodeError):  # a year or character the C library refuses
            return None

    return render


def _check_date_format(date_format: Any, pointer: str) -> None:
    if not isinstance(date_format, str) or not date_format:
        raise _refuse(pointer, "needs a strftime format such as '%Y-%m-%d %H:%M:%S'")
    position = date_format.find("%")
    while position != -1:
        directive = date_format[position + 1:position + 2]
        if not directive:
            raise _refuse(pointer, "ends with a lone %")
        if directive not in DATE_DIRECTIVES:
            raise _refuse(pointer, f"unknown strftime directive %{directive}")
        position = date_format.find("%", position + 2)


def to_datetime(value: Any) -> datetime | None:
    """A UTC time from an ISO-8601 string or epoch seconds or milliseconds; None if it is neither."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # 1e11 seconds is the year 5138, 1e11 milliseconds 1973: a number that big is milliseconds.
            seconds = value / 1000 if abs(value) >= 1e11 else value
            return datetime.fromtimestamp(seconds, timezone.utc)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value)
            return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _literal(spec: Mapping[str, Any], pointer: str) -> Node:
    value = spec["$literal"]
    try:
        json_values.check(value)
    except InvalidInput as exc:
        raise _refuse(_child(pointer, "$literal"), exc.problem) from None
    return lambda document: copy.deepcopy(value)  # a fresh copy, so no caller can change the template


SPECIALS: dict[str, tuple[set[str], Callable[[Mapping[str, Any], str], Node]]] = {
    "$hash": ({"of", "separator"}, _hash),
    "$date": ({"format"}, _date),
    "$literal": (set(), _literal),
}
