"""Writes subscription changes to the compacted subscriptions topic.

The endpoint topic is created before the subscription is written, so the router never
routes to a topic that does not exist yet; topics asked for together are created in one request.
Each write answers where it landed, so the writer can wait for its own table to read that far
and see whether the change won.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.kafka.admin import TopicSpec, admin_client, delete_topics, endpoint_topic
from pipeline.kafka.clients import AcknowledgedSender
from pipeline.kafka.topic_creator import TopicCreator
from pipeline.subscriptions.avro import to_avro
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import load_box
from pipeline.subscriptions.topic_pool import TopicPool
from pipeline.topics import TopicNames


@dataclass(frozen=True)
class Position:
    """Where a record landed in the subscriptions topic."""

    partition: int
    offset: int


class SubscriptionWriter:
    def __init__(self, settings: Settings, topic_pool: int = 0):
        """topic_pool: how many endpoint topics to keep made ahead (see TopicPool); 0 for none."""
        self.settings = settings
        self.topic = TopicNames.from_settings(settings).subscriptions
        self._sender = AcknowledgedSender(settings)
        self._admin = admin_client(settings.kafka_bootstrap_servers)
        self._topics = TopicCreator(self._admin)
        self._box = load_box(settings)
        self._pool = TopicPool(self._topics, self._default_topic, topic_pool) if topic_pool else None

    def pooled_id(self) -> str | None:
        """An id whose endpoint topic, of the default partitions, is made already; None if none is ready."""
        return self._pool.take() if self._pool else None

    def pooled(self) -> int:
        """How many endpoint topics made ahead are ready."""
        return len(self._pool) if self._pool else 0

    def close(self) -> None:
        """Deletes the endpoint topics made ahead that no subscription took."""
        unused = self._pool.close() if self._pool else []
        if unused:
            delete_topics(self._admin, [self._default_topic(subscription_id).name for subscription_id in unused])
        self._sender.close()

    def _default_topic(self, subscription_id: str) -> TopicSpec:
        return endpoint_topic(self.settings, subscription_id)

    def put(self, subscription: Subscription) -> Position:
        self._topics.ensure(endpoint_topic(self.settings, subscription.id, subscription.partitions))
        return self._write(subscription.id, to_avro(subscription, self._box))

    def delete(self, subscription_id: str) -> Position:
        """A tombstone: compaction removes the subscription for good."""
        return self._write(subscription_id, None)

    def _write(self, subscription_id: str, value: bytes | None) -> Position:
        written = self._sender.send(self.topic, subscription_id.encode(), value)
        return Position(written.partition(), written.offset())
