"""Request bodies in each format a subscription offers, query strings, and custom header checks.

- json: compact JSON (non-ASCII escaped, so any string encodes), `application/json`. NaN and
  Infinity are no JSON: a payload holding one is refused, naming where it is.
- form: `application/x-www-form-urlencoded`, flattened PHP/Rails-style: `a[b]=1` for objects,
  `a[]=1&a[]=2` for arrays of scalars, `a[0][b]=1` for arrays holding objects or arrays (an index
  keeps each element's fields together, which `a[][b]` would not). Scalars go as text: strings
  as they are, null as "", others as JSON (`true`, `7`). Empty objects and arrays send nothing.
  A top-level array uses its indexes as names (`0[id]=..`), as a batch of events would.
- raw: a string as UTF-8 (`text/plain; charset=utf-8`), bytes as they are
  (`application/octet-stream`), any other value as compact JSON (`application/json`).
- json-rpc: a JSON-RPC 2.0 request `{"jsonrpc": "2.0", "method", "params", "id"}`; params must be
  structured, so a scalar payload is sent as a one-element array; no id makes it a notification.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from pipeline import json_values
from pipeline.dispatcher.template import as_text
from pipeline.errors import InvalidInput

FORMATS = ("json", "form", "raw", "json-rpc")
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 7230 section 3.2.6
# Set by the pipeline or by the connection itself: a custom value would break framing or signatures.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
    "te", "trailer", "upgrade", "x-signature", "x-signature-algo",
})
RESERVED_PREFIXES = ("webhook-",)  # Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature


def encode_payload(fmt: str, payload: Any, *, rpc_method: str | None = None,
                   rpc_id: str | None = None) -> tuple[bytes, str]:
    """The body and its default Content-Type for one of FORMATS."""
    if fmt == "json":
        return _json(payload), JSON
    if fmt == "form":
        return urlencode(query_pairs(payload)).encode("ascii"), FORM
    if fmt == "raw":
        return _raw(payload)
    if fmt == "json-rpc":
        return _json(_rpc_request(payload, rpc_method, rpc_id)), JSON
    raise InvalidInput("body_format", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def query_pairs(payload: Any) -> list[tuple[str, str]]:
    """Name and value pairs for a form body or a query string, flattened as the form format is."""
    if isinstance(payload, Mapping):
        return list(_flatten_object(payload, ""))
    if isinstance(payload, list):
        return list(_flatten_array(payload, "", indexed=True))
    # Only a template can make anything else (the envelope is an object, a batch an array).
    raise InvalidInput("template", f"form fields and query parameters need an object or an array, "
                                   f"not {type(payload).__name__}")


def validate_header(name: str, value: str) -> None:
    """Refuses a custom header the pipeline could not send as given."""
    if not isinstance(name, str) or not TOKEN.fullmatch(name):
        raise InvalidInput("headers", f"{name!r} is not a valid header name (an RFC 7230 token)")
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
        raise InvalidInput("headers", f"{name!r} is set by the pipeline and cannot be changed")
    if not isinstance(value, str):
        raise InvalidInput("headers", f"the value of {name!r} must be a string")
    bad = next((ch for ch in value if not (ch == "\t" or " " <= ch <= "~")), None)
    if bad is not None:
        raise InvalidInput("headers", f"the value of {name!r} contains {_describe(bad)}; header values "
                                      "hold printable ASCII only, never CR, LF or NUL")


def _json(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")
    except ValueError:
        json_values.check(value, ("body",))  # raises InvalidInput naming where the NaN or Infinity is
        raise


def _raw(payload: Any) -> tuple[bytes, str]:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload), "application/octet-stream"
    if isinstance(payload, str):
        # A lone surrogate (JSON allows "\ud800") is not text: replaced rather than failing the delivery.
        return payload.encode("utf-8", "replace"), "text/plain; charset=utf-8"
    return _json(payload), JSON


def _rpc_request(payload: Any, method: str | None, request_id: str | None) -> dict[str, Any]:
    if not isinstance(method, str) or not method:
        raise InvalidInput("rpc_method", "is required when body_format is json-rpc")
    params = payload if isinstance(payload, (Mapping, list)) else [payload]
    request = {"jsonrpc": "2.0", "method": method, "params": params}
    return request if request_id is None else request | {"id": request_id}


def _flatten(value: Any, name: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        yield from _flatten_object(value, name)
    elif isinstance(value, list):
        yield from _flatten_array(value, name, indexed=any(isinstance(v, (Mapping, list)) for v in value))
    else:
        yield name, _wire_text(as_text(value))


def _flatten_object(value: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, item in value.items():
        key = _wire_text(str(key))
        yield from _flatten(item, f"{prefix}[{key}]" if prefix else key)


def _flatten_array(value: list[Any], prefix: str, *, indexed: bool) -> Iterator[tuple[str, str]]:
    for index, item in enumerate(value):
        yield from _flatten(item, f"{prefix}[{index if indexed else ''}]" if prefix else str(index))


def _wire_text(text: str) -> str:
    """Text that encodes as UTF-8: urlencode would raise on a lone surrogate."""
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def _describe(ch: str) -> str:
    names = {"\r": "CR", "\n": "LF", "\0": "NUL"}
    return names.get(ch, f"the character U+{ord(ch):04X}")
