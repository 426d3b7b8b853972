"""Avro single-object encoding of the pipeline's records, with the schemas in schemas/.

Single-object encoding is the marker C3 01, the writer schema's CRC-64-AVRO fingerprint
(8 bytes, little-endian), then the schemaless Avro body. The fingerprint lets a reader
pick the writer schema, so schemas can evolve without a registry service.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from pipeline.errors import CodecError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
# Earlier versions of a schema, kept so records written by them stay readable:
# <name>.v<N>.avsc, resolved to the current schema on read.
HISTORY_DIR = SCHEMA_DIR / "history"
MARKER = b"\xc3\x01"
# Referenced schemas first: a record can only name a type parsed before it.
SCHEMA_FILES = ("event", "subscription", "delivery_task", "delivery_attempt", "routing_decision")


class Codec:
    """Encodes and decodes one record type; decodes any known writer schema of that type."""

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema
        self.fingerprint = _fingerprint(schema)
        self.header = MARKER + self.fingerprint

    def encode(self, record: dict[str, Any]) -> bytes:
        return self.header + self.encode_body(record)

    def encode_body(self, record: dict[str, Any]) -> bytes:
        """The schemaless Avro body alone: a record's body is its fields' bodies in schema order,
        so bodies can be joined into an enclosing record's."""
        body = io.BytesIO()
        fastavro.schemaless_writer(body, self.schema, record)
        return body.getvalue()

    def decode(self, payload: bytes) -> dict[str, Any]:
        if not is_single_object(payload):
            raise CodecError("not an Avro single-object message (no C3 01 marker)")
        writer = _schemas_by_fingerprint().get(payload[2:10])
        if writer is None:
            raise CodecError(f"unknown writer schema fingerprint {payload[2:10].hex()}")
        try:
            reader = None if writer is self.schema else self.schema
            return fastavro.schemaless_reader(io.BytesIO(payload[10:]), writer, reader)
        except Exception as exc:  # fastavro raises many types for corrupt bodies
            raise CodecError(f"corrupt Avro body: {exc}") from exc


def is_single_object(payload: bytes) -> bool:
    return payload[:2] == MARKER and len(payload) >= 10


def _fingerprint(schema: dict[str, Any]) -> bytes:
    canonical = to_parsing_canonical_form(schema)
    return int(fingerprint(canonical, "CRC-64-AVRO"), 16).to_bytes(8, "little")


@lru_cache(maxsize=1)
def _parsed_schemas() -> dict[str, dict[str, Any]]:
    named: dict[str, Any] = {}
    parsed = {}
    for name in SCHEMA_FILES:
        raw = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
        parsed[name] = parse_schema(raw, named_schemas=named)
    return parsed


@lru_cache(maxsize=1)
def _schemas_by_fingerprint() -> dict[bytes, dict[str, Any]]:
    writers = {_fingerprint(schema): schema for schema in _parsed_schemas().values()}
    for path in sorted(HISTORY_DIR.glob("*.avsc")):
        # An old version is a self-contained record, parsed on its own.
        schema = parse_schema(json.loads(path.read_text()))
        writers.setdefault(_fingerprint(schema), schema)
    return writers


@lru_cache(maxsize=None)
def codec(name: str) -> Codec:
    """The codec of one schema file of schemas/, by its name without extension."""
    return Codec(_parsed_schemas()[name])
