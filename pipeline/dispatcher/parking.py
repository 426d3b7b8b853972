"""Endpoint partitions that have been quiet for a while are parked: not fetched, only watched.

A fetch request names every partition it asks for, and librdkafka keeps no fetch session, so a
dispatcher fetching ten thousand endpoint partitions costs the broker ten thousand partition
look-ups per fetch (and the broker ran out of heap doing it). Most endpoints are quiet most of the
time: a partition with nothing new for `idle_s` is paused, and the end offsets of all parked
partitions are asked for in one request every few hundred milliseconds; a parked partition that
grew is fetched again. An endpoint that has been quiet waits up to that interval for its next
event; a busy one, and a new one, never wait for it.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.dispatcher.records import PartitionId


class Parking:
    def __init__(self, idle_s: float):
        self.idle_s = idle_s
        self._last_active: dict[PartitionId, float] = {}
        self._next_offset: dict[PartitionId, int] = {}
        self.parked: set[PartitionId] = set()

    def started(self, partition: PartitionId, next_offset: int, now: float) -> None:
        """A partition just assigned counts as active: its first tasks must not wait."""
        self._last_active[partition] = now
        self._next_offset[partition] = next_offset

    def fetched(self, partition: PartitionId, offset: int, now: float) -> None:
        self._last_active[partition] = now
        self._next_offset[partition] = offset + 1
        self.parked.discard(partition)

    def idle(self, now: float, busy: Callable[[PartitionId], bool]) -> list[PartitionId]:
        """Partitions to park: quiet for idle_s, and nothing of theirs still being delivered."""
        return [partition for partition, last in self._last_active.items()
                if partition not in self.parked and now - last >= self.idle_s and not busy(partition)]

    def park(self, partitions: list[PartitionId]) -> None:
        self.parked.update(partitions)

    def grown(self, end_offsets: dict[PartitionId, int], now: float) -> list[PartitionId]:
        """Parked partitions whose end moved past what was fetched of them: they are unparked."""
        woken = [partition for partition, end in end_offsets.items()
                 if partition in self.parked and end > self._next_offset.get(partition, 0)]
        for partition in woken:
            self.parked.discard(partition)
            self._last_active[partition] = now
        return woken

    def forget(self, partitions: list[PartitionId]) -> None:
        for partition in partitions:
            self._last_active.pop(partition, None)
            self._next_offset.pop(partition, None)
            self.parked.discard(partition)
