"""A partition pauses when too much is in flight, or too much finished waits behind a retried task."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition

from pipeline.config import Settings
from pipeline.dispatcher.consumer import EndpointConsumer
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.partition import PartitionWork
from pipeline.dispatcher.progress import RetryProgress
from tests.dispatcher.test_outbox import FakeKafkaConsumer, Record
from tests.polling import until


class PausingConsumer(FakeKafkaConsumer):
    def __init__(self, owned: set[TopicPartition]):
        super().__init__(owned)
        self.paused: set[TopicPartition] = set()

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)


async def test_a_partition_pauses_when_too_much_finished_waits_behind_a_retried_task(settings: Settings) -> None:
    settings = settings.model_copy(update={"max_in_flight_per_partition": 64, "max_uncommitted_per_partition": 10})
    deliverer = SimpleNamespace(progress=RetryProgress())
    consumer = EndpointConsumer(settings, deliverer=deliverer, outbox=Outbox(settings))  # type: ignore[arg-type]
    partition = TopicPartition("endpoint", 0)
    fake = consumer._consumer = PausingConsumer({partition})  # type: ignore[assignment]
    release = asyncio.Event()

    async def handle(batch: list[Record]) -> None:
        if batch[0].offset == 0:
            await release.wait()  # being retried

    work = consumer._work[partition] = PartitionWork(handle)
    for offset in range(10):
        work.submit(Record(offset, key=f"k{offset}".encode()))
    await until(lambda: work.in_flight == 1)
    consumer._apply_backpressure()
    assert work.in_flight == 1 and partition in fake.paused  # one in flight, but ten uncommitted
    release.set()
    await until(lambda: work.in_flight == 0)
    work.committable()
    consumer._apply_backpressure()
    assert partition not in fake.paused
