"""A consumer driven from asyncio tells how long its calls took, by name."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from pipeline.config import Settings
from pipeline.kafka.threaded import ThreadedConsumer


async def test_each_call_but_take_is_observed_by_name(settings: Settings) -> None:
    calls: list[tuple[str, float]] = []
    consumer = ThreadedConsumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "threaded"},
                                name="threaded-test", observe=lambda name, seconds: calls.append((name, seconds)))
    try:
        assert await consumer.call(consumer.raw.assignment) == []
        assert await consumer.take(10, 0) == []
    finally:
        await consumer.close()
    assert [name for name, _ in calls] == ["assignment", "close"]
    assert all(seconds >= 0 for _, seconds in calls)


async def test_a_renewal_is_observed_as_a_replace_and_leaves_a_new_consumer_with_nothing_assigned(
        settings: Settings) -> None:
    calls: list[str] = []
    consumer = ThreadedConsumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "threaded"},
                                name="threaded-test", observe=lambda name, seconds: calls.append(name))
    try:
        await consumer.call(consumer.raw.incremental_assign, [TopicPartition("threaded-test", 0, 0)])
        old = consumer.raw
        await consumer.renew()
        assert consumer.raw is not old and await consumer.call(consumer.raw.assignment) == []
    finally:
        await consumer.close()
    assert calls == ["incremental_assign", "replace", "assignment", "close"]
