"""A delivery task as the dispatcher holds it: the fields of the Kafka message it came in, read once.

confluent-kafka hands out messages whose every field is a method call into C; lanes, retries and
commits look at a task's position and key many times, so they are copied out when it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class PartitionId(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class TaskRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    timestamp: int  # milliseconds since the epoch, as Kafka stamped it

    @property
    def position(self) -> PartitionId:
        return PartitionId(self.topic, self.partition)

    @classmethod
    def of(cls, message: Any) -> TaskRecord:
        return cls(topic=message.topic(), partition=message.partition(), offset=message.offset(),
                   key=message.key(), value=message.value(), headers=message.headers(),
                   timestamp=message.timestamp()[1])
