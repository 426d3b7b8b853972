"""Writes subscription changes to the compacted subscriptions topic.

The endpoint topic is created before the subscription is written, so the router never
routes to a topic that does not exist yet; topics asked for together are created in one request.
"""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.kafka.admin import admin_client, endpoint_topic
from pipeline.kafka.clients import AcknowledgedSender
from pipeline.kafka.topic_creator import TopicCreator
from pipeline.subscriptions.avro import to_avro
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import load_box
from pipeline.topics import TopicNames


class SubscriptionWriter:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.topic = TopicNames.from_settings(settings).subscriptions
        self._sender = AcknowledgedSender(settings)
        self._topics = TopicCreator(admin_client(settings.kafka_bootstrap_servers))
        self._box = load_box(settings)

    def put(self, subscription: Subscription) -> None:
        self._topics.ensure(endpoint_topic(self.settings, subscription.id))
        self._sender.send(self.topic, subscription.id.encode(), to_avro(subscription, self._box))

    def delete(self, subscription_id: str) -> None:
        """A tombstone: compaction removes the subscription for good."""
        self._sender.send(self.topic, subscription_id.encode(), None)
