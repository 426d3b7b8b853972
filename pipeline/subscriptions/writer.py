"""Writes subscription changes to the compacted subscriptions topic.

The endpoint topic is created before the subscription is written, so the router never
routes to a topic that does not exist yet. Each write answers where it landed, so the writer
can wait for its own table to read that far and see whether the change won.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.admin import admin_client, endpoint_topic, ensure_topics
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.subscriptions.avro import to_avro
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import load_box
from pipeline.topics import TopicNames


@dataclass(frozen=True)
class Position:
    """Where a record landed in the subscriptions topic."""

    partition: int
    offset: int


class SubscriptionWriter:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.topic = TopicNames.from_settings(settings).subscriptions
        self._producer = reliable_producer(settings, **{"linger.ms": 0})
        self._admin = admin_client(settings.kafka_bootstrap_servers)
        self._box = load_box(settings)

    def put(self, subscription: Subscription) -> Position:
        ensure_topics(self._admin, [endpoint_topic(self.settings, subscription.id)])
        return self._write(subscription.id, to_avro(subscription, self._box))

    def delete(self, subscription_id: str) -> Position:
        """A tombstone: compaction removes the subscription for good."""
        return self._write(subscription_id, None)

    def _write(self, subscription_id: str, value: bytes | None) -> Position:
        reports: list[tuple[Any, Any]] = []
        self._producer.produce(self.topic, key=subscription_id.encode(), value=value,
                               on_delivery=lambda error, message: reports.append((error, message)))
        flush_or_raise(self._producer)
        for _ in range(100):  # another thread's flush may be serving this report right now
            if reports:
                break
            self._producer.poll(0.05)
        if not reports:
            raise ServiceError(f"Kafka never reported on the write of subscription {subscription_id}")
        error, message = reports[0]
        if error is not None:
            raise ServiceError(f"subscription {subscription_id} was not written to {self.topic}: {error}")
        return Position(message.partition(), message.offset())
