"""The subscriptions topic as a live in-memory table, for asyncio processes.

Every process reads every partition (no consumer group), from the beginning, and then
follows the topic, so a change made through the API or CLI reaches each stage within
about a fetch interval. A process that writes a change waits until its table has read it
(`settled`), then sees whether the change won (pipeline.subscriptions.records).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AIOTopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.admin import admin_client
from pipeline.kafka.offsets import list_offsets
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import load_box
from pipeline.subscriptions.records import apply_record
from pipeline.subscriptions.writer import Position
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)
OUTCOMES_KEPT = 10_000  # a writer asks about its record right after writing it


class SubscriptionTable:
    def __init__(self, settings: Settings, *, fetch_wait_ms: int = 100):
        self.settings = settings
        self.topic = TopicNames.from_settings(settings).subscriptions
        self.fetch_wait_ms = fetch_wait_ms
        self.rows: dict[str, Subscription] = {}
        self.version = 0  # bumped on every change, so readers can rebuild what they derive from rows
        self._box = load_box(settings)
        self.loaded = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._read_up_to: dict[int, int] = {}  # partition -> the offset after the last record read
        self._outcomes: OrderedDict[Position, bool] = OrderedDict()  # whether each recent record applied
        self._advanced = asyncio.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._listeners: list[Callable[[set[str]], None]] = []
        self._caught_up_at = 0.0  # epoch seconds: every change written before then has been read
        self._catching_up: asyncio.Task[None] | None = None
        self._admin: AdminClient | None = None

    def get(self, subscription_id: str) -> Subscription | None:
        return self.rows.get(subscription_id)

    def all(self) -> list[Subscription]:
        return list(self.rows.values())

    def on_change(self, listener: Callable[[set[str]], None]) -> None:
        """listener gets the ids of the subscriptions that changed (created, updated or deleted),
        after each batch of changes, so it can follow them without scanning every row."""
        self._listeners.append(listener)

    def _changed(self, subscription_ids: set[str]) -> None:
        for listener in self._listeners:
            listener(subscription_ids)

    async def settled(self, position: Position, timeout_s: float = 30.0) -> bool:
        """Once the record written at `position` has been read here: whether it applied."""
        def passed() -> bool:
            return self._read_up_to.get(position.partition, 0) > position.offset

        async with self._advanced:
            try:
                await asyncio.wait_for(self._advanced.wait_for(passed), timeout_s)
            except TimeoutError as exc:
                raise ServiceError(f"the subscriptions table did not read {self.topic} up to {position} "
                                   f"within {timeout_s:.0f} s") from exc
        return self._outcomes.get(position, False)

    async def caught_up_to(self, moment: float, timeout_s: float = 10.0) -> None:
        """Returns once every change written to the topic before `moment` (epoch seconds) has been
        read here; raises ServiceError when Kafka cannot tell its end offsets, TimeoutError after
        timeout_s. Looking costs a request for the end offsets, shared by every caller that
        waits meanwhile, so it is for events that cannot wait out a fetch interval: one that
        matches nothing, published just after the subscription it was meant for."""
        deadline = time.monotonic() + timeout_s
        while self._caught_up_at < moment:
            if self._catching_up is None or self._catching_up.done():
                self._catching_up = asyncio.create_task(self._catch_up())
            await asyncio.wait_for(asyncio.shield(self._catching_up), max(0.0, deadline - time.monotonic()))

    async def _catch_up(self) -> None:
        if self._consumer is None:
            raise ServiceError("the subscriptions table is not following its topic")
        asked = time.time()
        partitions = [p.partition for p in self._consumer.assignment()]
        # librdkafka's admin client answers in about a millisecond; aiokafka's end_offsets waits
        # for the fetch in progress, 50 ms on average.
        ends = await asyncio.to_thread(self._end_offsets, partitions)

        def passed() -> bool:
            return all(self._read_up_to.get(partition, 0) >= end for partition, end in ends.items())

        async with self._advanced:
            await self._advanced.wait_for(passed)
        self._caught_up_at = max(self._caught_up_at, asked)

    def _end_offsets(self, partitions: list[int]) -> dict[int, int]:
        if self._admin is None:
            self._admin = admin_client(self.settings.kafka_bootstrap_servers)
        ends, failed = list_offsets(self._admin, [(self.topic, p) for p in partitions], OffsetSpec.latest(), 10)
        if failed:
            raise ServiceError(f"could not read the end offsets of {self.topic}: {next(iter(failed.values()))}")
        return {partition: offset for (_, partition), offset in ends.items()}

    def settled_blocking(self, position: Position, timeout_s: float = 30.0) -> bool:
        """`settled`, for a thread other than the one whose loop follows the topic."""
        if self._loop is None:
            raise ServiceError("the subscriptions table is not following its topic")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("settled_blocking would block the loop that follows the topic: await settled()")
        return asyncio.run_coroutine_threadsafe(self.settled(position, timeout_s), self._loop).result()

    async def run(self) -> None:
        """Loads the whole topic, sets `loaded`, then follows it until cancelled."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.fetch_wait_ms,
        )
        self._consumer = consumer
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        await consumer.start()
        try:
            partitions = await self._assign_all(consumer)
            end_offsets = await consumer.end_offsets(partitions)
            await self._follow(consumer, end_offsets)
        finally:
            await consumer.stop()

    async def wait_loaded(self, timeout_s: float = 30.0) -> None:
        await asyncio.wait_for(self.loaded.wait(), timeout_s)

    async def _assign_all(self, consumer: AIOKafkaConsumer) -> list[AIOTopicPartition]:
        partition_ids = consumer.partitions_for_topic(self.topic)
        while not partition_ids:
            await consumer._client.force_metadata_update()  # aiokafka has no public call for this
            partition_ids = consumer.partitions_for_topic(self.topic)
        partitions = [AIOTopicPartition(self.topic, p) for p in sorted(partition_ids)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return partitions

    async def _follow(self, consumer: AIOKafkaConsumer, end_offsets: dict[AIOTopicPartition, int]) -> None:
        await self._mark_loaded_if_caught_up(consumer, end_offsets)
        while True:
            batches = await consumer.getmany(timeout_ms=self.fetch_wait_ms)
            changed = set()
            for partition, records in batches.items():
                for record in records:
                    applied = apply_record(self.rows, record.key, record.value, self._box)
                    self._remember(Position(partition.partition, record.offset), applied)
                    if applied and record.key is not None:
                        changed.add(record.key.decode())
                if records:
                    self._read_up_to[partition.partition] = records[-1].offset + 1
            if batches:
                self.version += 1
                if changed:
                    self._changed(changed)
                async with self._advanced:
                    self._advanced.notify_all()
            if not self.loaded.is_set():
                await self._mark_loaded_if_caught_up(consumer, end_offsets)

    def _remember(self, position: Position, applied: bool) -> None:
        self._outcomes[position] = applied
        if len(self._outcomes) > OUTCOMES_KEPT:
            self._outcomes.popitem(last=False)

    async def _mark_loaded_if_caught_up(
        self, consumer: AIOKafkaConsumer, end_offsets: dict[AIOTopicPartition, int]
    ) -> None:
        for partition, end in end_offsets.items():
            if await consumer.position(partition) < end:
                return
        log.info("subscriptions table loaded: %d subscriptions", len(self.rows))
        self.loaded.set()

