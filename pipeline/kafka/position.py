"""Where a record sits in Kafka: what names it when it has no name of its own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

# Any fixed namespace works: it only has to stay the same, so a record always derives the same id.
_NAMESPACE = uuid.UUID("0b7f6a52-5d0e-4c8a-9a4e-6f1c2d3b4a59")


@dataclass(frozen=True, kw_only=True)
class Position:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None  # the record's Kafka timestamp, when it has one

    @classmethod
    def of(cls, message: Any) -> Position:
        """From an aiokafka or faust message (timestamp in milliseconds, or in seconds for faust)."""
        timestamp = getattr(message, "timestamp", None)
        if isinstance(timestamp, float):  # faust gives seconds
            timestamp = round(timestamp * 1000)
        return cls(topic=message.topic, partition=message.partition, offset=message.offset,
                   timestamp_ms=timestamp if timestamp is not None and timestamp >= 0 else None)

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    def headers(self) -> list[tuple[str, bytes]]:
        return [("source-topic", self.topic.encode()), ("source-partition", str(self.partition).encode()),
                ("source-offset", str(self.offset).encode())]

    def derived_id(self, prefix: str) -> str:
        """The same id every time this record is read, and a different one for any other record
        (the timestamp tells apart a record of a topic deleted and created again)."""
        return f"{prefix}_{uuid.uuid5(_NAMESPACE, f'{self}@{self.timestamp_ms}').hex}"

    @property
    def time(self) -> datetime | None:
        if self.timestamp_ms is None:
            return None
        return datetime.fromtimestamp(self.timestamp_ms / 1000, timezone.utc)
