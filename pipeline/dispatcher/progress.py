"""How far the retries of a partition's oldest unfinished task got, carried in the commit.

A task retried in place holds its partition's committed offset. The dispatcher commits that
offset with the task's next attempt number and when that attempt is due in the commit's
metadata, so whoever owns the partition next (after a rebalance, a restart or a crash) carries
on with the schedule instead of starting it over, and keeps a Retry-After it was given. Only the
partition's oldest unfinished task is carried; tasks of other keys behind it start again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition


METADATA_PREFIX = "dispatcher/v1 "
METADATA = re.compile(rf"^{re.escape(METADATA_PREFIX)}attempt=(\d+) due=(\d+)$")
Position = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class Progress:
    attempt: int  # the number of the next attempt
    due_at: float  # epoch seconds

    def metadata(self) -> str:
        return f"{METADATA_PREFIX}attempt={self.attempt} due={int(self.due_at * 1000)}"

    @classmethod
    def parse(cls, metadata: str | None) -> Progress | None:
        match = METADATA.match(metadata or "")
        return cls(int(match.group(1)), int(match.group(2)) / 1000) if match else None


class RetryProgress:
    """Tasks waiting for their next attempt, by position: the dispatcher's own, and those its
    partitions' previous owners committed."""

    def __init__(self) -> None:
        self._waiting: dict[Position, Progress] = {}

    def of(self, record: Any) -> Progress | None:
        return self._waiting.get((record.topic, record.partition, record.offset))

    def waiting(self, record: Any, progress: Progress) -> None:
        self._waiting[(record.topic, record.partition, record.offset)] = progress

    def finished(self, record: Any) -> None:
        self._waiting.pop((record.topic, record.partition, record.offset), None)

    def metadata(self, partition: TopicPartition, offset: int) -> str:
        """What to commit beside this offset: the progress of the task at it, if it is waiting."""
        progress = self._waiting.get((partition.topic, partition.partition, offset))
        return progress.metadata() if progress else ""

    def learn(self, committed: dict[Position, Progress]) -> None:
        self._waiting.update(committed)

    def forget(self, partitions: list[TopicPartition]) -> None:
        released = {(tp.topic, tp.partition) for tp in partitions}
        for position in [p for p in self._waiting if (p[0], p[1]) in released]:
            del self._waiting[position]


def progress_of(committed: dict[TopicPartition, Any]) -> dict[Position, Progress]:
    """The retry progress among committed offsets ({tp: OffsetAndMetadata})."""
    return {(tp.topic, tp.partition, entry.offset): progress for tp, entry in committed.items()
            if entry.offset >= 0 and (progress := Progress.parse(entry.metadata)) is not None}
