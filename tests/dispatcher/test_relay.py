"""The relay holds a parked task through as many tiers as its wait needs, then returns it."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.relay import RetryRelay
from pipeline.kafka.admin import TopicSpec, admin_client, ensure_topics
from pipeline.kafka.offsets import watermarks
from pipeline.topics import TopicNames
from tests.polling import wait_until

pytestmark = pytest.mark.integration


class _Task:
    def __init__(self, topic: str):
        self.topic, self.key, self.value = topic, b"k", b"task"


async def test_a_wait_longer_than_a_tier_passes_through_tiers_and_ends_at_its_due_time(settings) -> None:
    source = f"{settings.topic_prefix}endpoint.sub_relay"
    ensure_topics(admin_client(settings.kafka_bootstrap_servers), [TopicSpec(name=source, partitions=1)])
    outbox = Outbox(settings)
    parked_at = time.time()
    outbox.defer(_Task(source), attempt=3, delay_s=2.6)  # tier 1 until nothing remains, then back
    await outbox.flush()
    stopping = asyncio.Event()
    relay = asyncio.create_task(RetryRelay(settings, outbox).run(stopping))
    try:
        back = await asyncio.to_thread(_first_message, settings, source)
    finally:
        stopping.set()
        await relay
    assert back.value() == b"task" and dict(back.headers())["attempt"] == b"3"
    assert back.timestamp()[1] / 1000 - parked_at >= 2.6  # never before its due time
    assert _written(settings, TopicNames.from_settings(settings).retry_tier(1)) >= 2  # parked, then parked again


def _written(settings, topic: str) -> int:  # type: ignore[no-untyped-def]
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "relay-count"})
    try:
        return sum(watermarks(consumer, TopicPartition(topic, p))[1] for p in range(settings.results_partitions))
    finally:
        consumer.close()


def _first_message(settings, topic: str):  # type: ignore[no-untyped-def]
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "relay-test",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        return wait_until(lambda: (message := consumer.poll(0.5)) is not None and message.error() is None
                          and message, timeout_s=30, what="the task back in its endpoint topic")
    finally:
        consumer.close()
