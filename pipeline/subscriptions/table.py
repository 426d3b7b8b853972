"""The subscriptions topic as a live in-memory table, for asyncio processes.

Every process reads every partition (no consumer group), from the beginning, and then
follows the topic, so a change made through the API or CLI reaches each stage within
about a fetch interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.config import Settings
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import load_box
from pipeline.subscriptions.records import apply_record
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)


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
        self._listeners: list[Callable[[set[str]], None]] = []

    def get(self, subscription_id: str) -> Subscription | None:
        return self.rows.get(subscription_id)

    def all(self) -> list[Subscription]:
        return list(self.rows.values())

    def on_change(self, listener: Callable[[set[str]], None]) -> None:
        """listener gets the ids of the subscriptions that changed (created, updated or deleted),
        after each batch of changes, so it can follow them without scanning every row."""
        self._listeners.append(listener)

    def put_local(self, subscription: Subscription) -> None:
        """This process's own write, seen at once rather than when it comes back from Kafka."""
        self.rows[subscription.id] = subscription
        self._changed({subscription.id})

    def remove_local(self, subscription_id: str) -> None:
        self.rows.pop(subscription_id, None)
        self._changed({subscription_id})

    def _changed(self, subscription_ids: set[str]) -> None:
        self.version += 1
        for listener in self._listeners:
            listener(subscription_ids)

    async def run(self) -> None:
        """Loads the whole topic, sets `loaded`, then follows it until cancelled."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.fetch_wait_ms,
        )
        self._consumer = consumer
        await consumer.start()
        try:
            partitions = await self._assign_all(consumer)
            end_offsets = await consumer.end_offsets(partitions)
            await self._follow(consumer, end_offsets)
        finally:
            await consumer.stop()

    async def wait_loaded(self, timeout_s: float = 30.0) -> None:
        await asyncio.wait_for(self.loaded.wait(), timeout_s)

    async def _assign_all(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        partition_ids = consumer.partitions_for_topic(self.topic)
        while not partition_ids:
            await consumer._client.force_metadata_update()  # aiokafka has no public call for this
            partition_ids = consumer.partitions_for_topic(self.topic)
        partitions = [TopicPartition(self.topic, p) for p in sorted(partition_ids)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return partitions

    async def _follow(self, consumer: AIOKafkaConsumer, end_offsets: dict[TopicPartition, int]) -> None:
        await self._mark_loaded_if_caught_up(consumer, end_offsets)
        while True:
            batches = await consumer.getmany(timeout_ms=self.fetch_wait_ms)
            changed = set()
            for records in batches.values():
                for record in records:
                    apply_record(self.rows, record.key, record.value, self._box)
                    if record.key is not None:
                        changed.add(record.key.decode())
            if changed:
                self._changed(changed)
            if not self.loaded.is_set():
                await self._mark_loaded_if_caught_up(consumer, end_offsets)

    async def _mark_loaded_if_caught_up(
        self, consumer: AIOKafkaConsumer, end_offsets: dict[TopicPartition, int]
    ) -> None:
        for partition, end in end_offsets.items():
            if await consumer.position(partition) < end:
                return
        log.info("subscriptions table loaded: %d subscriptions", len(self.rows))
        self.loaded.set()

