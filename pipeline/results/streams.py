"""The record streams the results service stores: which topic fills which table, and how.

Two streams: delivery attempts (results topic, written by the dispatcher) and routing
decisions (routing topic, written by the router). Each table has exactly one column per
field of the stream's Avro schema, in schema order, but for the fields only Kafka needs
(an attempt's intent and timeout: see open_attempts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.errors import CodecError, InvalidInput
from pipeline.topics import TopicNames

# The largest value of each unsigned column; a record outside them could never be inserted,
# and a chunk that can never be inserted would block the sink forever, so it is refused first.
ATTEMPT_UNSIGNED_LIMITS = {
    "attempt": 0xFFFF,
    "status_code": 0xFFFF,
    "request_bytes": 0xFFFF_FFFF,
    "response_bytes": 0xFFFF_FFFF,
}


@dataclass(frozen=True, kw_only=True)
class Stream:
    table: str
    codec_name: str
    unsigned_limits: Mapping[str, int] = field(default_factory=dict)
    kafka_only: frozenset[str] = frozenset()  # fields the sink reads but the table has no column for

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(name for name in schema_fields(self.codec_name) if name not in self.kafka_only)

    def check_storable(self, record: dict[str, Any]) -> dict[str, Any]:
        """Returns the record if the table can hold it; raises InvalidInput naming the bad field."""
        if not required_fields(self.codec_name) <= record.keys():  # the common case, checked fast
            missing = [name for name in self.columns if name not in record and name in required_fields(self.codec_name)]
            raise InvalidInput(missing[0], f"missing from the {self.codec_name.replace('_', ' ')}")
        for name, largest in self.unsigned_limits.items():
            value = record[name]
            if value is not None and not 0 <= value <= largest:
                raise InvalidInput(name, f"{value} is outside 0..{largest}")
        return record

    def decode(self, value: bytes | None) -> dict[str, Any]:
        """The storable record in a message's value; raises CodecError or InvalidInput."""
        if not value:
            raise CodecError("empty message")
        return self.check_storable(codec(self.codec_name).decode(value))


ATTEMPTS = Stream(table="delivery_attempts", codec_name="delivery_attempt", unsigned_limits=ATTEMPT_UNSIGNED_LIMITS,
                  kafka_only=frozenset({"intent", "timeout_ms"}))
ROUTING = Stream(table="routing_decisions", codec_name="routing_decision")


@lru_cache(maxsize=None)
def schema_fields(codec_name: str) -> tuple[str, ...]:
    return tuple(item["name"] for item in codec(codec_name).schema["fields"])


@lru_cache(maxsize=None)
def required_fields(codec_name: str) -> frozenset[str]:
    """Fields without a default: a record lacking one cannot be stored."""
    return frozenset(field["name"] for field in codec(codec_name).schema["fields"] if "default" not in field)


def streams_by_topic(settings: Settings) -> dict[str, Stream]:
    names = TopicNames.from_settings(settings)
    return {names.results: ATTEMPTS, names.routing: ROUTING}
