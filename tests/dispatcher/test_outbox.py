"""A record Kafka did not take stops every later commit: the outbox stays failed, the consumer commits nothing."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from confluent_kafka import KafkaError

from pipeline.config import Settings
from pipeline.dispatcher.consumer import EndpointConsumer
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.partition import PartitionWork
from pipeline.dispatcher.progress import RetryProgress
from pipeline.errors import ServiceError
from tests.polling import until


class FailedMessage:
    def topic(self) -> str:
        return "dead-letters"


@dataclass
class Record:
    offset: int
    key: bytes | None = None


class FakeKafkaConsumer:
    def __init__(self, owned: set[TopicPartition]):
        self.owned = owned
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


async def test_a_failed_write_fails_every_later_flush(settings: Settings) -> None:
    outbox = Outbox(settings)
    await outbox.flush()  # nothing failed yet
    outbox._writer._on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), FailedMessage())
    for _ in range(3):
        with pytest.raises(ServiceError, match="dead-letters"):
            await outbox.flush()


async def test_the_consumer_commits_nothing_once_a_flush_failed(settings: Settings) -> None:
    outbox = Outbox(settings)
    deliverer = SimpleNamespace(progress=RetryProgress())  # only what committing asks of it
    consumer = EndpointConsumer(settings, deliverer=deliverer, outbox=outbox)  # type: ignore[arg-type]
    partition = TopicPartition("endpoint", 0)
    fake = consumer._consumer = FakeKafkaConsumer({partition})  # type: ignore[assignment]

    async def handle(batch: list[Record]) -> None:
        pass

    work = consumer._work[partition] = PartitionWork(handle)
    work.submit(Record(0))
    await until(lambda: work.in_flight == 0)
    outbox._writer._on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), FailedMessage())  # offset 0's dead letter
    with pytest.raises(ServiceError):
        await consumer._commit([partition])
    await consumer.release([partition], grace_s=1.0)  # the shutdown path after the failure
    assert fake.commits == []
    assert consumer._work == {}



@dataclass
class Task:
    value: bytes
    key: bytes | None = b"k"
    topic: str = "endpoint.sub"


def test_a_task_too_large_for_a_delay_topics_headers_is_not_deferred(settings: Settings) -> None:
    outbox = Outbox(settings)
    assert outbox.defer(Task(b"small"), attempt=2, delay_s=1.0)
    assert not outbox.defer(Task(b"x" * (settings.max_record_bytes - 100)), attempt=2, delay_s=1.0)
    assert outbox.broken is None  # nothing was refused: the deliverer keeps that task in its lane
