"""Records deleted before the dispatcher consumed them are reported, never skipped in silence;
the topics that hold what is not delivered yet keep it (time retention off) unless a horizon is set."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.dispatcher.consumer import EndpointConsumer
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.records import PartitionId
from pipeline.dispatcher.relay import RetryRelay
from pipeline.kafka import lost
from pipeline.kafka.admin import RETRY_TIERS_S, admin_client, core_topics, endpoint_topic, ensure_topics
from pipeline.kafka.lost import LOST_EVENT, LossReporter, LostRange, group_losses, lost_ranges
from pipeline.kafka.retention import backlog_config
from pipeline.metrics.lost import count_lost_records
from pipeline.topics import TopicNames
from tests.dispatcher.test_consumer import StubDeliverer, StubDirectory, consumer_for
from tests.polling import until, wait_until


def test_a_committed_offset_before_the_log_start_loses_the_offsets_up_to_it() -> None:
    committed = {("t", 0): 3, ("t", 1): 9, ("t", 2): -1001, ("u", 0): 5}
    starts = {("t", 0): 7, ("t", 1): 4, ("t", 2): 50}

    assert lost_ranges(committed, starts) == [LostRange(topic="t", partition=0, first_offset=3, last_offset=6)]
    assert lost_ranges(committed, starts)[0].count == 4


def test_the_backlog_is_kept_unless_a_horizon_is_set(settings: Settings) -> None:
    assert backlog_config(settings) == {"retention.ms": "-1"}
    assert backlog_config(settings.model_copy(update={"backlog_horizon_days": 2})) == {"retention.ms": "172800000"}
    names = TopicNames.from_settings(settings)
    kept = {spec.name for spec in core_topics(settings) if spec.config.get("retention.ms") == "-1"}
    assert kept == {names.dead_letters, *(names.retry_tier(tier) for tier in RETRY_TIERS_S)}
    assert endpoint_topic(settings, "sub_a").config == {"retention.ms": "-1"}


@pytest.mark.integration
def test_an_existing_topic_gets_the_backlog_retention_when_ensured_again(settings: Settings) -> None:
    admin = admin_client(settings.kafka_bootstrap_servers)
    spec = endpoint_topic(settings, "sub_old")
    ensure_topics(admin, [spec.__class__(name=spec.name, partitions=1)])  # made before retention was declared
    assert _retention(admin, spec.name) != "-1"

    ensure_topics(admin, [spec])

    # The broker answers describes from its copy of the metadata, a moment behind the controller.
    wait_until(lambda: _retention(admin, spec.name) == "-1", timeout_s=10, what="the retention kept")


@pytest.mark.integration
async def test_records_deleted_before_the_committed_offset_are_reported_and_the_rest_delivered(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    admin = admin_client(settings.kafka_bootstrap_servers)
    spec = endpoint_topic(settings, "sub_lossy")
    ensure_topics(admin, [spec])
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for offset in range(10):
        producer.produce(spec.name, key=b"k", value=f"task {offset}".encode())
    producer.flush(10)
    wait_until(lambda: _commit(settings, TopicPartition(spec.name, 0, 3)), what="the commit")
    for future in admin.delete_records([TopicPartition(spec.name, 0, 7)], request_timeout=10).values():
        future.result()
    found: list[tuple[LostRange, str]] = []
    lost.add_loss_listener(lambda lost_range, consumer: found.append((lost_range, consumer)))
    deliverer = StubDeliverer()
    deliverer.release.set()
    consumer = EndpointConsumer(settings, deliverer, Outbox(settings))  # type: ignore[arg-type]
    consumer.directory = StubDirectory(consumer.names)  # type: ignore[assignment]
    try:
        with caplog.at_level(logging.WARNING, logger="pipeline.kafka.lost"):
            await consumer._gain(["sub_lossy"])
        while len(deliverer.delivered) < 3:
            consumer._submit(await consumer._consumer.take(100, 0.2))
    finally:
        lost._listeners.clear()
        await consumer._consumer.close()

    assert found == [(LostRange(topic=spec.name, partition=0, first_offset=3, last_offset=6), "dispatcher")]
    assert f"dispatcher lost 4 records of {spec.name}[0], offsets 3 to 6" in caplog.text
    assert sorted(deliverer.delivered) == [7, 8, 9]
    assert consumer._work[PartitionId(spec.name, 0)].committable() == 10
    event = wait_until(lambda: _operator_event(settings), what="the operator event")
    assert event["first_offset"] == 3 and event["last_offset"] == 6 and event["count"] == 4


def _commit(settings: Settings, offset: TopicPartition, group_id: str = "") -> bool:
    """As the dispatcher commits: in its group, without joining it (the coordinator may still be starting)."""
    group = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                      "group.id": group_id or f"{settings.topic_prefix}dispatcher"})
    try:
        group.commit(offsets=[offset], asynchronous=False)
        return True
    except KafkaException:
        return False
    finally:
        group.close()


def _retention(admin, topic: str) -> str:  # type: ignore[no-untyped-def]
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result()["retention.ms"].value


def _operator_event(settings: Settings) -> dict | None:  # type: ignore[type-arg]
    import json

    reader = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "lost-event-reader",
                       "enable.auto.commit": False})
    topic = TopicNames.from_settings(settings).events
    partitions = admin_client(settings.kafka_bootstrap_servers).list_topics(topic).topics[topic].partitions
    reader.assign([TopicPartition(topic, p, 0) for p in partitions])
    try:
        for message in reader.consume(100, 2.0):
            if message.error() is None:
                event = codec("event").decode(message.value())
                if event["type"] == LOST_EVENT:
                    return json.loads(event["data"])
    finally:
        reader.close()
    return None


@pytest.mark.integration
async def test_retries_deleted_before_the_relay_passed_them_on_are_reported(settings: Settings) -> None:
    names = TopicNames.from_settings(settings)
    tier = names.retry_tier(1)
    source = endpoint_topic(settings, "sub_relayed")
    admin = admin_client(settings.kafka_bootstrap_servers)
    ensure_topics(admin, [source])
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for _ in range(5):
        producer.produce(tier, partition=0, key=b"k", value=b"task",
                         headers=[("source", source.name.encode()), ("attempt", b"2"), ("due-at", b"0")])
    producer.flush(10)
    wait_until(lambda: _commit(settings, TopicPartition(tier, 0, 2), group_id=f"{settings.topic_prefix}retry-relay"),
               what="the commit")
    for future in admin.delete_records([TopicPartition(tier, 0, 4)], request_timeout=10).values():
        future.result()
    found: list[tuple[LostRange, str]] = []
    lost.add_loss_listener(lambda lost_range, consumer: found.append((lost_range, consumer)))
    stopping = asyncio.Event()
    relay = asyncio.create_task(RetryRelay(settings, Outbox(settings)).run(stopping))
    try:
        await until(lambda: found, timeout_s=30)
    finally:
        stopping.set()
        await relay
        lost._listeners.clear()

    assert found == [(LostRange(topic=tier, partition=0, first_offset=2, last_offset=3), "retry-relay")]


@pytest.mark.integration
def test_a_group_about_to_resume_past_deleted_records_is_told_the_range(settings: Settings) -> None:
    """What the router looks at as it starts."""
    names = TopicNames.from_settings(settings)
    admin = admin_client(settings.kafka_bootstrap_servers)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for _ in range(6):
        producer.produce(names.routing, partition=1, value=b"row")
    producer.flush(10)
    group_id = f"{settings.topic_prefix}results-sink"
    wait_until(lambda: _commit(settings, TopicPartition(names.routing, 1, 2), group_id=group_id), what="the commit")
    for future in admin.delete_records([TopicPartition(names.routing, 1, 5)], request_timeout=10).values():
        future.result()

    assert group_losses(admin, settings.kafka_bootstrap_servers, group_id, [names.results, names.routing]) == [
        LostRange(topic=names.routing, partition=1, first_offset=2, last_offset=4)]
    assert group_losses(admin, settings.kafka_bootstrap_servers, f"{settings.topic_prefix}nobody", [names.routing]) == []


@pytest.mark.integration
def test_a_stage_counts_what_its_consumers_lost(settings: Settings) -> None:
    registry = CollectorRegistry()
    count_lost_records(registry)
    try:
        LossReporter(settings, "retry-relay").report([LostRange(topic="t", partition=0, first_offset=3, last_offset=6)])
    finally:
        lost._listeners.clear()

    assert registry.get_sample_value("webhook_records_lost_total", {"consumer": "retry-relay"}) == 4


@pytest.mark.integration
async def test_a_dispatcher_gives_the_topics_it_gains_the_backlog_retention(settings: Settings) -> None:
    """An endpoint topic made before retention was declared, gained by a dispatcher: the
    retention is set beside the gain, not in its way."""
    admin = admin_client(settings.kafka_bootstrap_servers)
    spec = endpoint_topic(settings, "sub_a")
    ensure_topics(admin, [spec.__class__(name=spec.name, partitions=1)])
    consumer, _, _ = consumer_for(settings)
    await consumer._gain(["sub_a"])
    assert _retention(admin, spec.name) != "-1"

    await consumer._align_gained()

    wait_until(lambda: _retention(admin, spec.name) == "-1", timeout_s=10, what="the retention kept")
