"""What the dispatcher relies on librdkafka doing when it pauses, parks and wakes partitions
(pipeline/dispatcher/consumer.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from pipeline.config import Settings
from pipeline.kafka.admin import TopicSpec, admin_client, delete_topics_with_prefix, ensure_topics
from tests.polling import wait_until


@contextmanager
def one_partition(settings: Settings, name: str) -> Iterator[tuple[str, Producer, Consumer]]:
    """A new single-partition topic, a producer, and a consumer of it that is assigned by hand."""
    topic = f"{settings.topic_prefix}{name}-{uuid.uuid4().hex[:6]}"
    ensure_topics(admin_client(settings.kafka_bootstrap_servers), [TopicSpec(name=topic, partitions=1)])
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": topic,
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    try:
        yield topic, producer, consumer
    finally:
        consumer.close()
        delete_topics_with_prefix(settings.kafka_bootstrap_servers, topic)


@pytest.mark.integration
def test_a_paused_partition_stays_paused_through_an_unassign_and_a_new_assign(settings: Settings) -> None:
    with one_partition(settings, "pausing") as (topic, producer, consumer):
        producer.produce(topic, b"first")
        producer.flush(10)
        consumer.incremental_assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        assert _next_value(consumer, 10) == b"first"
        consumer.pause([TopicPartition(topic, 0)])
        consumer.incremental_unassign([TopicPartition(topic, 0)])
        producer.produce(topic, b"second")
        producer.flush(10)
        consumer.incremental_assign([TopicPartition(topic, 0, 1)])
        assert _next_value(consumer, 2) is None  # still paused: the dispatcher resumes what it assigns
        consumer.resume([TopicPartition(topic, 0)])
        assert _next_value(consumer, 10) == b"second"


@pytest.mark.integration
def test_a_partition_unassigned_and_assigned_again_at_once_fetches_from_the_offset_given(settings: Settings) -> None:
    """A parked partition is unassigned, and its doorbell may assign it again before librdkafka has
    finished letting it go: it must fetch from the offset given, neither refusing nor skipping."""
    with one_partition(settings, "parking") as (topic, producer, consumer):
        for value in (b"first", b"second", b"third"):
            producer.produce(topic, value)
        producer.flush(10)
        consumer.incremental_assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        assert _next_value(consumer, 10) == b"first"
        for _ in range(3):
            consumer.incremental_unassign([TopicPartition(topic, 0)])
            consumer.incremental_assign([TopicPartition(topic, 0, 2)])
        assert _next_value(consumer, 10) == b"third"


def _next_value(consumer: Consumer, timeout_s: float) -> bytes | None:
    found: list[bytes] = []

    def arrived() -> bool:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            found.append(message.value())
        return bool(found)

    try:
        wait_until(arrived, timeout_s=timeout_s, interval_s=0, what="a message")
    except AssertionError:
        return None
    return found[0]
