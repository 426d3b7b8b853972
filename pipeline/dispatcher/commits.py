"""Committing endpoint partitions: only up to finished messages, only after their attempt records
reached Kafka, with the retry progress and the endpoint's state beside the offset.

Dispatchers assign endpoint partitions by hand, so their group has no members and the broker
expires its offsets a week (offsets.retention.minutes) after their last commit: an endpoint quiet
for longer would start over from its topic's beginning. Unchanged offsets are committed again
daily so that never happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaException, TopicPartition

from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.partition import PartitionWork
from pipeline.dispatcher.records import PartitionId
from pipeline.kafka.threaded import ThreadedConsumer

log = logging.getLogger(__name__)
RECOMMIT_AFTER_S = 86_400.0


class Committer:
    def __init__(self, consumer: ThreadedConsumer, outbox: Outbox, metadata: Callable[[PartitionId, int], str]):
        self._consumer = consumer
        self._outbox = outbox
        self._metadata = metadata
        self._committed: dict[PartitionId, tuple[int, str, float]] = {}  # offset, metadata, when

    def knows(self, partition: PartitionId, offset: int, metadata: str) -> None:
        """What the partition's previous owner committed, counted as committed now."""
        self._committed[partition] = (offset, metadata, time.time())

    def is_current(self, partition: PartitionId, work: PartitionWork) -> bool:
        """Nothing more to commit for this partition until it gets new messages."""
        last = self._committed.get(partition)
        offset = work.committable()
        return work.uncommitted == 0 and (offset is None or (last is not None and last[0] == offset))

    def stale(self, works: dict[PartitionId, PartitionWork]) -> dict[PartitionId, PartitionWork]:
        oldest = time.time() - RECOMMIT_AFTER_S
        return {p: work for p, work in works.items() if self._committed.get(p, (0, "", 0.0))[2] < oldest}

    async def commit(self, works: dict[PartitionId, PartitionWork], *, refresh: bool = False) -> None:
        """Raises once a record was lost (the outbox stays failed): offsets then stay where they are."""
        now = time.time()
        offsets = [offset for partition, work in works.items()
                   if (offset := self._changed(partition, work, now, refresh)) is not None]
        if not offsets:
            return
        await self._outbox.flush()
        try:
            await self._consumer.call(self._consumer.raw.commit, offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("commit failed, the uncommitted tasks will be redelivered: %s", exc)
            return
        for tp in offsets:
            self._committed[PartitionId(tp.topic, tp.partition)] = (tp.offset, tp.metadata or "", now)

    def forget(self, partitions: list[PartitionId]) -> None:
        for partition in partitions:
            self._committed.pop(partition, None)

    def _changed(self, partition: PartitionId, work: PartitionWork, now: float, refresh: bool) -> TopicPartition | None:
        offset = work.committable()
        if offset is None:
            return None
        metadata = self._metadata(partition, offset)
        last = self._committed.get(partition)
        if last is not None and last[:2] == (offset, metadata) and not refresh:
            return None
        return TopicPartition(partition.topic, partition.partition, offset, metadata=metadata)
