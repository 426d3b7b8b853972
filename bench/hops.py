"""Where a webhook's time goes, hop by hop, from the timestamps the pipeline already records:
the event's `time` (stamped when it was published), the task's `routed_at` (the router), the
attempt's `started_at` (the dispatcher, as it sends) and the receiver's arrival time.

The tasks are read back from the endpoint topic and the attempt records from the results topic,
so nothing is added to the pipeline for measuring it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.kafka.clients import LIBRDKAFKA_LOG
from pipeline.models import DeliveryTask
from pipeline.topics import TopicNames

HOPS = ("publish → routed", "routed → sent", "sent → received")


@dataclass(frozen=True)
class Timing:
    published: float
    routed: float
    sent: float
    received: float

    @property
    def hops_ms(self) -> tuple[float, float, float]:
        return ((self.routed - self.published) * 1000, (self.sent - self.routed) * 1000,
                (self.received - self.sent) * 1000)


def timings(settings: Settings, subscription_id: str, received: dict[str, float]) -> list[Timing]:
    """received: event id -> when the receiver got it. Those events' timings, where every stamp is found."""
    names = TopicNames.from_settings(settings)
    routed, published = {}, {}
    for value in _values(settings, names.endpoint(subscription_id)):
        task = DeliveryTask.from_avro(value)
        if task.event.id in received:
            routed[task.event.id] = task.routed_at.timestamp()
            published[task.event.id] = task.event.time.timestamp()
    sent = {}
    attempts = codec("delivery_attempt")
    for value in _values(settings, names.results):
        attempt = attempts.decode(value)
        if attempt["event_id"] in routed and attempt["outcome"] == "success":
            sent[attempt["event_id"]] = attempt["started_at"].timestamp()
    return [Timing(published[event_id], routed[event_id], sent[event_id], received[event_id])
            for event_id in routed if event_id in sent]


def _values(settings: Settings, topic: str) -> Iterator[bytes]:
    """Every value in the topic, from the beginning to its end as of now."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"hops-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "logger": LIBRDKAFKA_LOG})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p, end in ends.items() if end > 0])
        remaining = {p for p, end in ends.items() if end > 0}
        while remaining:
            for message in consumer.consume(1000, 5.0):
                if message.error() is None and message.value():
                    yield message.value()
                if message.error() is None and message.offset() + 1 >= ends[message.partition()]:
                    remaining.discard(message.partition())
    finally:
        consumer.close()


def first_tasks(settings: Settings, subscription_ids: list[str]) -> dict[str, float]:
    """When the router routed the first task of each endpoint: subscription id -> routed_at."""
    names = TopicNames.from_settings(settings)
    topics = {names.endpoint(subscription_id): subscription_id for subscription_id in subscription_ids}
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"hops-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "logger": LIBRDKAFKA_LOG})
    routed: dict[str, float] = {}
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING) for topic in topics])
        quiet = 0
        while len(routed) < len(topics) and quiet < 3:
            messages = consumer.consume(1000, 5.0)
            quiet = 0 if messages else quiet + 1
            for message in messages:
                subscription_id = topics.get(message.topic())
                if message.error() is None and message.value() and subscription_id not in routed:
                    routed[subscription_id] = DeliveryTask.from_avro(message.value()).routed_at.timestamp()
    finally:
        consumer.close()
    return routed


def attempts_of(settings: Settings, subscription_ids: set[str]) -> dict[str, list[tuple[float, float]]]:
    """The attempts of these endpoints that have an outcome: subscription id -> (started_at,
    latency_ms of the HTTP request) in the order written."""
    attempts = codec("delivery_attempt")
    found: dict[str, list[tuple[float, float]]] = {}
    for value in _values(settings, TopicNames.from_settings(settings).results):
        attempt = attempts.decode(value)
        if attempt["subscription_id"] in subscription_ids and attempt.get("intent") != "open":
            found.setdefault(attempt["subscription_id"], []).append(
                (attempt["started_at"].timestamp(), attempt["latency_ms"]))
    return found
