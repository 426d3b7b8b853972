"""Endpoint partitions that have been quiet for a while are parked: not fetched until woken.

A fetch request names every partition it asks for, and librdkafka keeps no fetch session, so a
dispatcher fetching ten thousand endpoint partitions costs the broker ten thousand partition
look-ups per fetch (and the broker ran out of heap doing it). Most endpoints are quiet most of the
time: a partition with nothing new for `idle_s`, and nothing left to fetch (its end offset is
looked at first), is taken out of the consumer's assignment, and assigned again at its next
offset when woken (the consumer does that; this only keeps track). Whoever writes a task to an
endpoint topic rings its doorbell (pipeline.kafka.wakeups) unless it rang within the last second,
and the doorbell wakes the partition at once; a ring also keeps an active partition from being
parked for another `idle_s` (longer than a second, so a task written without a ring is fetched,
or seen by the look at the end offset, before parking). As a safety net, the end offsets of
parked partitions are looked at now and then, and one that grew is woken too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pipeline.dispatcher.records import PartitionId


class Parking:
    def __init__(self, idle_s: float):
        self.idle_s = idle_s
        self._last_active: dict[PartitionId, float] = {}  # the partitions being fetched
        self._next_offset: dict[PartitionId, int] = {}
        self.parked: set[PartitionId] = set()

    def started(self, partition: PartitionId, next_offset: int, now: float) -> None:
        """A partition just assigned counts as active: its first tasks must not wait."""
        self._last_active[partition] = now
        self._next_offset[partition] = next_offset

    def fetched(self, partition: PartitionId, offset: int, now: float) -> bool:
        """A task arrived; True when that woke the partition (a task fetched just before it was parked)."""
        self._next_offset[partition] = offset + 1
        return self._activate(partition, now)

    def rung(self, partitions: Iterable[PartitionId], now: float) -> list[PartitionId]:
        """A doorbell: tasks were written. The partitions it woke."""
        return [partition for partition in partitions if self._activate(partition, now)]

    def idle(self, now: float, busy: Callable[[PartitionId], bool]) -> list[PartitionId]:
        """Partitions to park: quiet for idle_s, and nothing of theirs still being delivered."""
        return [partition for partition, last in self._last_active.items()
                if now - last >= self.idle_s and not busy(partition)]

    def park(self, partitions: list[PartitionId], end_offsets: dict[PartitionId, int], quiet_since: float) -> list[PartitionId]:
        """Parks those of the partitions with nothing left to fetch and nothing new since quiet_since
        (a doorbell may have rung while the end offsets were asked for). The partitions parked."""
        parked = [partition for partition in partitions
                  if self._last_active.get(partition, quiet_since + 1) <= quiet_since
                  and end_offsets.get(partition, self._next_offset.get(partition, 0) + 1) <= self._next_offset.get(partition, 0)]
        for partition in parked:
            del self._last_active[partition]
            self.parked.add(partition)
        return parked

    def grown(self, end_offsets: dict[PartitionId, int], now: float) -> list[PartitionId]:
        """Parked partitions whose end moved past what was fetched of them: they are woken."""
        return [partition for partition, end in end_offsets.items()
                if partition in self.parked and end > self._next_offset.get(partition, 0)
                and self._activate(partition, now)]

    def next_offset(self, partition: PartitionId) -> int:
        """Where fetching it goes on: past the last task fetched, or where it was started."""
        return self._next_offset.get(partition, 0)

    def forget(self, partitions: list[PartitionId]) -> None:
        for partition in partitions:
            self._last_active.pop(partition, None)
            self._next_offset.pop(partition, None)
            self.parked.discard(partition)

    def _activate(self, partition: PartitionId, now: float) -> bool:
        woken = partition in self.parked
        if woken:
            self.parked.discard(partition)
        if woken or partition in self._last_active:
            self._last_active[partition] = now
        return woken
