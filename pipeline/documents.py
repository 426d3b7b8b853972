"""The event as filters and templates see it: a JSON document, and dotted paths into it.

Shared by the router (content filters) and the dispatcher (templates), so both read an event
the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline import json_values
from pipeline.models import Event, is_json

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

Path = tuple[tuple[str, int | None], ...]  # each step: the key, and the index it means in a list


def event_document(event: Event) -> dict[str, Any]:
    """What filters and templates see: the envelope's fields, with JSON data parsed.

    Data is parsed for a JSON content type, as the envelope does; anything else (or JSON that
    does not parse) is null. Data holding NaN or Infinity, or nested too deeply, which the router
    refuses, could only come from a task routed before it did: InvalidInput, so nothing renders
    it into a body.
    """
    data = None
    if is_json(event.content_type):
        try:
            data = json_values.loads(event.data, ("data",))
        except ValueError:
            data = None
    return {"id": event.id, "type": event.type, "source": event.source, "tenant": event.tenant,
            "time": event.time.isoformat().replace("+00:00", "Z"), "ordering_key": event.ordering_key,
            "data": data}


def parse_path(text: str) -> Path:
    """`a.b.0` to steps; a step that is a decimal number also indexes a list. ValueError if empty."""
    if not isinstance(text, str) or not text:
        raise ValueError("a path cannot be empty")
    keys = text.split(".")
    if "" in keys:
        raise ValueError(f"path {text!r} has an empty segment")
    return tuple((key, int(key) if key.isascii() and key.isdecimal() else None) for key in keys)


def lookup(document: Any, path: Path) -> Any:
    """The value at a path, or MISSING."""
    value = document
    for key, index in path:
        if isinstance(value, Mapping):
            value = value.get(key, MISSING)
            if value is MISSING:
                return MISSING
        elif isinstance(value, list) and index is not None and index < len(value):
            value = value[index]
        else:
            return MISSING
    return value
