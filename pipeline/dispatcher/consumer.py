"""The consumer group over every endpoint topic.

Each assigned partition gets a PartitionWork. A partition with too much in flight is
paused (its backlog waits in Kafka) and resumed when it drains. Offsets are committed
only up to finished messages, after the attempt records are flushed to Kafka; once a record
could not be written, nothing is committed again (not even on shutdown or a rebalance), so
Kafka redelivers every task since the last good commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from pipeline.config import Settings
from pipeline.dispatcher.deliverer import Deliverer
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.partition import PartitionWork
from pipeline.dispatcher.progress import progress_of
from pipeline.kafka.offsets import committed_metadata
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.errors import ServiceError
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)
COMMIT_INTERVAL_S = 0.5
REVOKE_GRACE_S = 2.0


class EndpointConsumer:
    def __init__(self, settings: Settings, deliverer: Deliverer, outbox: Outbox):
        self.settings = settings
        self.deliverer = deliverer
        self.outbox = outbox
        self.max_in_flight = settings.max_in_flight_per_partition
        self.max_uncommitted = settings.max_uncommitted_per_partition
        self.names = TopicNames.from_settings(settings)
        self._work: dict[TopicPartition, PartitionWork] = {}
        self._committed: dict[TopicPartition, tuple[int, str]] = {}  # offset, and the progress beside it
        self._paused: set[TopicPartition] = set()
        self._unready: set[TopicPartition] = set()  # assigned, their committed retry progress not read yet
        self.group_id = f"{settings.topic_prefix}dispatcher"
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new endpoint topic's first tasks must not be skipped
            # A backstop only: new endpoint topics are looked up as their subscriptions appear.
            metadata_max_age_ms=settings.dispatcher_metadata_refresh_ms,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            # At a steady trickle a fetch per task costs more than the task: wait a moment for company.
            fetch_min_bytes=32 * 1024,
            fetch_max_wait_ms=20,
        )

    async def run(self, stopping: asyncio.Event) -> None:
        pattern = self.names.endpoint_pattern
        self._consumer.subscribe(pattern=pattern, listener=_Rebalance(self))
        await self._consumer.start()
        try:
            await self._consume(stopping)
        finally:
            try:
                await self.release(list(self._work), grace_s=self.settings.shutdown_grace_s)
            finally:
                await self._consumer.stop()

    async def _consume(self, stopping: asyncio.Event) -> None:
        new_endpoints = _NewSubscriptions(self.deliverer.table)
        loop = asyncio.get_running_loop()
        next_commit = loop.time() + COMMIT_INTERVAL_S
        while not stopping.is_set():
            batches = await self._consumer.getmany(timeout_ms=100, max_records=2000)
            if new_endpoints.appeared():
                # Matching the topic pattern needs fresh metadata; aiokafka has no public call for it.
                await self._consumer._client.force_metadata_update()
            owned = self._consumer.assignment()
            for partition, records in batches.items():
                if partition not in owned:
                    continue  # fetched just before a rebalance took it away: its new owner delivers it
                if partition in self._unready:
                    self._consumer.seek(partition, records[0].offset)  # read again once progress is known
                    continue
                work = self._work.get(partition) or self._start_work(partition)
                for record in records:
                    work.submit(record)
            self._apply_backpressure()
            if loop.time() >= next_commit:
                await self._commit(list(self._work))
                next_commit = loop.time() + COMMIT_INTERVAL_S

    def _start_work(self, partition: TopicPartition) -> PartitionWork:
        subscription_id = self.names.subscription_of(partition.topic)
        work = PartitionWork(self.deliverer.deliver, policy=lambda: self.deliverer.lane_policy(subscription_id))
        self._work[partition] = work
        return work

    def _apply_backpressure(self) -> None:
        """Pauses a partition with too much in flight, or too much finished behind a message still
        being retried (other keys pass it, but what a crash would redeliver must stay bounded)."""
        for partition, work in self._work.items():
            full = work.in_flight >= self.max_in_flight or work.uncommitted >= self.max_uncommitted
            drained = work.in_flight < self.max_in_flight // 2 and work.uncommitted < self.max_uncommitted // 2
            if partition not in self._paused and full:
                self._consumer.pause(partition)
                self._paused.add(partition)
            elif partition in self._paused and drained:
                self._consumer.resume(partition)
                self._paused.discard(partition)

    async def _commit(self, partitions: list[TopicPartition]) -> None:
        offsets = {}
        owned = self._consumer.assignment()
        for partition in partitions:
            if partition not in owned:
                continue
            offset = self._work[partition].committable()
            if offset is None:
                continue
            commit = (offset, self.deliverer.progress.metadata(partition, offset))
            if commit != self._committed.get(partition):
                offsets[partition] = commit
        if not offsets:
            return
        await self.outbox.flush()  # raises for good once a record was lost: offsets stay where they are
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            log.warning("commit failed, the uncommitted tasks will be redelivered: %s", exc)
            return
        self._committed.update(offsets)

    async def learn_progress(self, partitions: list[TopicPartition]) -> None:
        """Where the previous owners of these partitions left the retries of their oldest tasks;
        their tasks wait meanwhile (aiokafka starts fetching before this is done)."""
        self._unready.update(partitions)
        try:
            committed = progress_of(await committed_metadata(self._consumer, partitions))
            if committed:
                log.info("carrying on the retries of %d tasks where the previous owners left them", len(committed))
            self.deliverer.progress.learn(committed)
        except Exception as exc:  # noqa: BLE001 -- a lookup that fails only costs a schedule started over
            log.warning("could not read the retry progress committed for %d partitions: %s", len(partitions), exc)
        finally:
            self._unready.difference_update(partitions)

    async def release(self, partitions: list[TopicPartition], grace_s: float) -> None:
        """Finishes what it can of partitions being taken away, commits it, and forgets them."""
        owned = [partition for partition in partitions if partition in self._work]
        await asyncio.gather(*(self._work[partition].close(grace_s) for partition in owned))
        if self.outbox.broken is None:
            with contextlib.suppress(ServiceError):  # the last flush found a lost record: logged below
                await self._commit(owned)
        for partition in owned:
            del self._work[partition]
            self._committed.pop(partition, None)
            self._paused.discard(partition)
        self.deliverer.progress.forget(owned)
        if self.outbox.broken is not None and owned:
            log.error("not committing %d released partitions, since %s; Kafka redelivers them from the last commit",
                      len(owned), self.outbox.broken)


class _NewSubscriptions:
    """Tells when the table holds a subscription not seen before: its endpoint topic exists by
    then (it is created first), and its first tasks must not wait for a periodic metadata refresh."""

    def __init__(self, table: SubscriptionTable):
        self.table = table
        self._version = -1
        self._known: set[str] = set()

    def appeared(self) -> bool:
        if self.table.version == self._version:
            return False
        self._version = self.table.version
        current = set(self.table.rows)
        new = current - self._known
        self._known = current
        return bool(new)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: EndpointConsumer):
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.release(list(revoked), grace_s=REVOKE_GRACE_S)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("dispatching %d endpoint partitions", len(assigned))
        await self.owner.learn_progress(list(assigned))
