"""Writes a delivery task straight into a subscription's endpoint topic: test sends and resends,
where the destination is already known and the router has nothing to decide."""

from __future__ import annotations

import json

from pipeline.config import Settings
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.kafka.wakeups import ring
from pipeline.models import DeliveryTask, Event, utcnow
from pipeline.subscriptions.model import Subscription
from pipeline.topics import TopicNames


class TaskPublisher:
    def __init__(self, settings: Settings):
        self.names = TopicNames.from_settings(settings)
        self._producer = reliable_producer(settings, **{"linger.ms": 0})

    def publish(self, task: DeliveryTask, key: bytes | None = None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        """key: the event's partition key unless given (see task_key)."""
        topic = self.names.endpoint(task.subscription_id)
        self._producer.produce(topic, key=key or task.event.partition_key, value=task.to_avro(), headers=headers)
        ring(lambda topic, key, value: self._producer.produce(topic, key=key, value=value), self.names,
             task.subscription_id)  # the endpoint's partition may be parked: it is fetched at once
        flush_or_raise(self._producer)


def task_key(subscription: Subscription, event: Event) -> bytes:
    """The key the router gives an event's task: a strict subscription's tasks share one partition."""
    return subscription.id.encode() if subscription.ordering == "strict" else event.partition_key


def webhook_test_task(subscription: Subscription) -> DeliveryTask:
    """A webhook.test event for one subscription, as its task."""
    data = {"message": "a test event from the webhook pipeline", "subscription_id": subscription.id}
    event = Event(type="webhook.test", source="webhook-pipeline", tenant=subscription.tenant,
                  data=json.dumps(data).encode())
    return DeliveryTask(subscription_id=subscription.id, routed_at=utcnow(), event=event)
