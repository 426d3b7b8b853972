"""What a dispatcher commits beside an endpoint partition's offset, so whoever owns it next carries on.

A task retried in place holds its partition's committed offset. Beside that offset go the task's
next attempt number and when it is due, and the endpoint's own state: how long it has only failed
(the streak behind auto-disable) and until when it asked us to wait (a Retry-After). Whoever owns
the partition next (after a rebalance, a restart or a crash) carries on with the schedule, keeps
the hold and keeps counting the streak instead of starting them over. Only the partition's oldest
unfinished task is carried; tasks of other keys behind it start again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline.dispatcher.records import PartitionId

METADATA_PREFIX = "dispatcher/v1 "
_PROGRESS = re.compile(r"attempt=(\d+) due=(\d+)")
_STREAK = re.compile(r"streak=(\d+):(\d+)")
_HOLD = re.compile(r"hold=(\d+)")
Position = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class Progress:
    attempt: int  # the number of the next attempt
    due_at: float  # epoch seconds

    def metadata(self) -> str:
        return CommitMetadata(progress=self).encode()

    @classmethod
    def parse(cls, metadata: str | None) -> Progress | None:
        return CommitMetadata.parse(metadata).progress


@dataclass(frozen=True)
class EndpointState:
    """An endpoint's failure streak (when it began, how many failures) and its Retry-After hold."""
    streak_began: float | None = None  # epoch seconds
    streak_failures: int = 0
    held_until: float | None = None  # epoch seconds

    def merged(self, other: EndpointState) -> EndpointState:
        """The state of an endpoint whose partitions committed different states: the longer streak
        and the later hold win, so nothing is forgotten."""
        streak = max(self, other, key=lambda state: state.streak_failures)
        holds = [hold for hold in (self.held_until, other.held_until) if hold is not None]
        return EndpointState(streak.streak_began, streak.streak_failures, max(holds) if holds else None)


@dataclass(frozen=True)
class CommitMetadata:
    progress: Progress | None = None
    endpoint: EndpointState = EndpointState()

    def encode(self) -> str:
        parts = []
        if self.progress is not None:
            parts.append(f"attempt={self.progress.attempt} due={_millis(self.progress.due_at)}")
        if self.endpoint.streak_began is not None and self.endpoint.streak_failures:
            parts.append(f"streak={_millis(self.endpoint.streak_began)}:{self.endpoint.streak_failures}")
        if self.endpoint.held_until is not None:
            parts.append(f"hold={_millis(self.endpoint.held_until)}")
        return METADATA_PREFIX + " ".join(parts) if parts else ""

    @classmethod
    def parse(cls, metadata: str | None) -> CommitMetadata:
        if not metadata or not metadata.startswith(METADATA_PREFIX):
            return cls()
        body = metadata[len(METADATA_PREFIX):]
        progress = streak = hold = None
        if match := _PROGRESS.search(body):
            progress = Progress(int(match.group(1)), int(match.group(2)) / 1000)
        if match := _STREAK.search(body):
            streak = (int(match.group(1)) / 1000, int(match.group(2)))
        if match := _HOLD.search(body):
            hold = int(match.group(1)) / 1000
        began, failures = streak or (None, 0)
        return cls(progress, EndpointState(began, failures, hold))


def _millis(seconds: float) -> int:
    return int(seconds * 1000)


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

    def at(self, partition: Any, offset: int) -> Progress | None:
        """The progress of the task at this offset, if it is waiting: what to commit beside it."""
        return self._waiting.get((partition.topic, partition.partition, offset))

    def metadata(self, partition: Any, offset: int) -> str:
        progress = self.at(partition, offset)
        return progress.metadata() if progress else ""

    def learn(self, committed: dict[Position, Progress]) -> None:
        self._waiting.update(committed)

    def forget(self, partitions: list[Any]) -> None:
        released = {(tp.topic, tp.partition) for tp in partitions}
        for position in [p for p in self._waiting if (p[0], p[1]) in released]:
            del self._waiting[position]


def progress_of(committed: dict[Any, Any]) -> dict[Position, Progress]:
    """The retry progress among committed offsets ({tp: entry with offset and metadata})."""
    return {(tp.topic, tp.partition, entry.offset): progress for tp, entry in committed.items()
            if entry.offset >= 0 and (progress := Progress.parse(entry.metadata)) is not None}


def endpoint_states(committed: dict[PartitionId, Any], subscription_of: Any) -> dict[str, EndpointState]:
    """Each endpoint's state among committed offsets, merged over its partitions."""
    states: dict[str, EndpointState] = {}
    for partition, entry in committed.items():
        state = CommitMetadata.parse(entry.metadata).endpoint
        subscription_id = subscription_of(partition.topic)
        states[subscription_id] = states[subscription_id].merged(state) if subscription_id in states else state
    return states
