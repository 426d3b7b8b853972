"""A topic read as a table's feed: every partition from its start (no consumer group), then followed.

`loaded` is set once every partition has been read up to where it ended when reading began, so a
process can wait for the whole table before it serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from pipeline.config import Settings

log = logging.getLogger(__name__)
METADATA_RETRY_S = 0.1  # while the topic is not yet known to the broker's metadata


class TopicFollower:
    def __init__(self, settings: Settings, topic: str, apply: Callable[[ConsumerRecord], None], *,
                 fetch_wait_ms: int = 100):
        self.settings = settings
        self.topic = topic
        self.apply = apply
        self.fetch_wait_ms = fetch_wait_ms
        self.loaded = asyncio.Event()

    async def run(self) -> None:
        """Reads until cancelled."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, fetch_max_wait_ms=self.fetch_wait_ms)
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topic, p) for p in sorted(await self._partition_ids(consumer))]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            while True:
                if not self.loaded.is_set() and await _reached(consumer, ends):
                    log.info("%s loaded", self.topic)
                    self.loaded.set()
                for records in (await consumer.getmany(timeout_ms=self.fetch_wait_ms)).values():
                    for record in records:
                        self.apply(record)
        finally:
            await consumer.stop()

    async def wait_loaded(self, timeout_s: float) -> None:
        await asyncio.wait_for(self.loaded.wait(), timeout_s)

    async def _partition_ids(self, consumer: AIOKafkaConsumer) -> set[int]:
        while not (found := consumer.partitions_for_topic(self.topic)):
            await consumer._client.force_metadata_update()  # aiokafka has no public call for this
            await asyncio.sleep(METADATA_RETRY_S)
        return found


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return False
    return True
