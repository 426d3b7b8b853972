"""Publishing JSON envelopes with a plain Kafka client, as the README tells: keyed by the ordering
key, a key's events arrive in order; unkeyed, an event with an ordering key is refused with the
reason (its order is lost already) and one without is delivered; an event without an id gets one
from its Kafka record, the same whenever it is routed again."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline.config import Settings
from pipeline.models import DeliveryTask
from pipeline.receiver import Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

pytestmark = pytest.mark.integration

KEYS, PER_KEY = 4, 50


def plain_producer(settings: Settings) -> Producer:
    """Not the SDK: librdkafka's defaults, its own partitioner included, as kcat would publish."""
    return Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})


def read(settings: Settings, topic: str, count: int) -> list:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    found: list = []
    try:
        wait_until(lambda: (m := consumer.poll(0.5)) is not None and m.error() is None and found.append(m)
                   or len(found) >= count, interval_s=0, what=f"{count} records on {topic}")
    finally:
        consumer.close()
    return found


def subscribe(settings: Settings, url: str) -> str:
    return SubscriptionCommands(SubscriptionWriter(settings), lambda _: None).create(
        {"name": "json", "url": url, "event_types": ["json.*"]}).id


def test_keyed_json_events_arrive_in_order_and_unkeyed_ones_with_an_ordering_key_are_refused(
        settings: Settings, tmp_path: Path) -> None:
    names = TopicNames.from_settings(settings)
    receiver = Receiver()
    subscribe(settings, f"{receiver.start()}/json")
    producer = plain_producer(settings)
    for n in range(PER_KEY):
        for k in range(KEYS):
            envelope = {"type": "json.keyed", "ordering_key": f"user-{k}", "data": {"n": n}}
            producer.produce(names.events, key=f"user-{k}".encode(), value=json.dumps(envelope).encode())
    for n in range(10):
        unkeyed = {"type": "json.unkeyed", "ordering_key": "user-lost", "data": {"n": n}}
        producer.produce(names.events, value=json.dumps(unkeyed).encode())
    for n in range(5):
        producer.produce(names.events, value=json.dumps({"type": "json.loose", "data": {"n": n}}).encode())
    assert producer.flush(30) == 0
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, ["pipeline.router", "pipeline.dispatcher"], logs):
            with logs_on_failure(logs):
                wait_until(lambda: len(receiver.by_path("/json")) >= KEYS * PER_KEY + 5, timeout_s=90,
                           what="the keyed and the loose events delivered")
                refused = read(settings, names.dead_letters, 10)
    finally:
        receiver.stop()
    sequences: dict[str, list[int]] = defaultdict(list)
    for delivery in receiver.by_path("/json"):
        body = json.loads(delivery.body)
        sequences[body["ordering_key"] or body["type"]].append(body["data"]["n"])
    assert sequences.pop("json.loose") and "user-lost" not in sequences
    assert sequences == {f"user-{k}": list(range(PER_KEY)) for k in range(KEYS)}
    for message in refused:
        headers = dict(message.headers())
        assert headers["error-field"] == b"key"
        assert headers["error"].startswith(b"key: the Kafka key is missing, not the ordering_key 'user-lost'")


def test_an_event_without_an_id_gets_the_same_id_and_time_when_routed_again(settings: Settings,
                                                                           tmp_path: Path) -> None:
    names = TopicNames.from_settings(settings)
    subscription_id = subscribe(settings, "https://example.test/hook")
    producer = plain_producer(settings)
    for n in range(3):
        producer.produce(names.events, value=json.dumps({"type": "json.anonymous", "data": {"n": n}}).encode())
    assert producer.flush(30) == 0
    endpoint = names.endpoint(subscription_id)
    for routed in (3, 6):  # the second router starts over from the first offset, as after a crash
        with running_stages(settings, ["pipeline.router"], tmp_path / f"logs-{routed}"):
            with logs_on_failure(tmp_path / f"logs-{routed}"):
                tasks = [DeliveryTask.from_avro(m.value()) for m in read(settings, endpoint, routed)]
        rewind_router(settings)
    events = {json.loads(m.value())["data"]["n"]: m for m in read(settings, names.events, 3)}
    seen: dict[int, set] = defaultdict(set)
    for task in tasks:
        seen[json.loads(task.event.data)["n"]].add((task.event.id, task.event.time))
    assert sorted(seen) == [0, 1, 2]
    ids = set()
    for n, versions in seen.items():
        ((event_id, time),) = versions  # both routes made the same webhook
        assert event_id.startswith("evt_")
        assert int(time.timestamp() * 1000) == events[n].timestamp()[1]  # the time Kafka stamped on it
        ids.add(event_id)
    assert len(ids) == 3  # and each event its own


def rewind_router(settings: Settings) -> None:
    """Commits offset 0 of every events partition for the router's consumer group."""
    names = TopicNames.from_settings(settings)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"{names.prefix}router"})
    try:
        partitions = consumer.list_topics(names.events, timeout=10).topics[names.events].partitions
        consumer.commit(offsets=[TopicPartition(names.events, p, 0) for p in partitions], asynchronous=False)
    finally:
        consumer.close()
