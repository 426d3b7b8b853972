"""Sends tasks waiting in the delay topics back to their endpoint topics when they are due.

Every task in a tier is held that tier's delay after it was written, so a partition's tasks come
due in order: the relay pauses a partition (rewound to its next task) until that one is ready,
and the consumer keeps polling meanwhile, so long delays never look like a stuck consumer. A ready
task due later still moves on to the tier for what remains (the shortest, for less than that),
and only a due one goes back to its endpoint topic: never early, about a second late at most.
Offsets are committed only after what was sent is acknowledged; the outbox is shared with the
endpoint consumer, so once any record of either was lost the relay commits nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from pipeline.config import Settings
from pipeline.dispatcher.outbox import Outbox
from pipeline.kafka.admin import RETRY_TIERS_S
from pipeline.kafka.lost import LossReporter, lost_ranges
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)


class RetryRelay:
    def __init__(self, settings: Settings, outbox: Outbox):
        self.outbox = outbox
        self.names = TopicNames.from_settings(settings)
        # By name, not by pattern: a pattern makes the client fetch every topic's metadata (ten
        # thousand endpoint topics) to match it, again and again.
        self.topics = [self.names.retry_tier(tier) for tier in RETRY_TIERS_S]
        self._resume_at: dict[TopicPartition, float] = {}
        self._losses = LossReporter(settings, "retry-relay")
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, group_id=f"{settings.topic_prefix}retry-relay",
            enable_auto_commit=False, auto_offset_reset="earliest", metadata_max_age_ms=30_000)

    async def run(self, stopping: asyncio.Event) -> None:
        self._consumer.subscribe(self.topics, listener=_LossCheck(self))
        await self._consumer.start()
        try:
            while not stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
                sent = {tp: offset for tp, records in batches.items() if (offset := self._send_due(tp, records))}
                if sent:
                    await self.outbox.flush()
                    await self._commit(sent)
                self._resume_due()
        finally:
            await self._consumer.stop()

    def _send_due(self, partition: TopicPartition, records: list) -> int | None:
        """Passes on the ready records in order; the first one not ready pauses the partition.
        The offset to commit."""
        held_s = self.names.tier_of(partition.topic)
        committed = None
        for record in records:
            ready_at = record.timestamp / 1000 + held_s
            if ready_at > time.time():
                self._consumer.pause(partition)
                self._consumer.seek(partition, record.offset)
                self._resume_at[partition] = ready_at
                break
            self._pass_on(record)
            committed = record.offset + 1
        return committed

    def _pass_on(self, record) -> None:  # type: ignore[no-untyped-def]
        headers = dict(record.headers or ())
        remaining_s = int(headers.get("due-at", b"0")) / 1000 - time.time()
        if remaining_s > 0:  # never early, even by less than the shortest tier: a Retry-After may stand behind it
            self.outbox.park(record.key, record.value, list(record.headers or ()), remaining_s)
        else:
            self.outbox.produce_raw(headers["source"].decode(), record.key, record.value,
                                    [("attempt", headers.get("attempt", b"2"))])

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            log.warning("relay commit failed; those retries may be sent twice: %s", exc)

    def _resume_due(self) -> None:
        now = time.time()
        for partition, due in list(self._resume_at.items()):
            if due <= now:
                del self._resume_at[partition]
                if partition in self._consumer.assignment():
                    self._consumer.resume(partition)

    async def report_losses(self, assigned: set[TopicPartition]) -> None:
        """Retries Kafka deleted before the relay passed them on (a backlog horizon shorter than a
        wait, or records deleted by hand): reported, since the consumer goes on from the log start."""
        try:
            committed = {(tp.topic, tp.partition): offset for tp in assigned
                         if (offset := await self._consumer.committed(tp)) is not None}
            starts = await self._consumer.beginning_offsets(list(assigned))
        except KafkaError as exc:
            log.warning("could not check the relay's partitions for lost retries: %s", exc)
            return
        lost = lost_ranges(committed, {(tp.topic, tp.partition): offset for tp, offset in starts.items()})
        if lost:
            await asyncio.to_thread(self._losses.report, lost)


class _LossCheck(ConsumerRebalanceListener):
    def __init__(self, relay: RetryRelay):
        self.relay = relay

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.relay.report_losses(assigned)
