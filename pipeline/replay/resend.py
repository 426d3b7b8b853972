"""Resend one event to one subscription, whatever became of it there (delivered, dead-lettered,
filtered out, or never routed there).

The event is read again from the events topic, at the position its routing decision recorded, and
its delivery task is written straight to the subscription's endpoint topic, as a test send is: it
joins the queue behind what is already there, in its key's lane, with the same webhook-id. Nothing
keeps a copy of the payload, so an event can be resent while the events topic still holds it (the
topic's retention: Kafka's default is 7 days) and its routing decision is kept (90 days).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from pipeline.config import Settings
from pipeline.errors import InvalidEvent, InvalidInput, ServiceError
from pipeline.kafka.offsets import watermarks
from pipeline.models import DeliveryTask, Event, decode_event, utcnow
from pipeline.producer.tasks import TaskPublisher, task_key
from pipeline.replay.replayer import _consumer, _read
from pipeline.subscriptions.model import Subscription
from pipeline.topics import TopicNames

RESENT_HEADER = ("replayed", b"resend")


class EventGone(InvalidInput):
    """The events topic no longer holds the event (past its retention)."""


def events_position(trail: dict[str, Any]) -> tuple[int, int]:
    """Where the event is in the events topic, from the latest routing decision that recorded it."""
    found = [(decision["events_partition"], decision["events_offset"]) for decision in trail["routing"]
             if decision["events_offset"] is not None]
    if not found:
        raise InvalidInput("event_id", "no routing decision says where this event is in the events topic: only "
                           "events the router decided on can be resent (not test sends, nor events routed "
                           "before positions were recorded)")
    return found[-1]


class Resender:
    def __init__(self, settings: Settings, tasks: TaskPublisher):
        self.settings = settings
        self.topic = TopicNames.from_settings(settings).events
        self.tasks = tasks

    def resend(self, trail: dict[str, Any], subscription: Subscription) -> DeliveryTask:
        """trail: the event's answer from the results service (pipeline.results.event_trail)."""
        if subscription.tenant and subscription.tenant != trail["tenant"]:
            raise InvalidInput("subscription_id", f"belongs to tenant {subscription.tenant!r}; the event is "
                               f"of tenant {trail['tenant']!r}")
        event = self.read(*events_position(trail))
        if event.id != trail["event_id"]:
            raise ServiceError(f"the events topic holds {event.id} where {trail['event_id']} was: was it recreated?")
        task = DeliveryTask(subscription_id=subscription.id, routed_at=utcnow(), event=event)
        self.tasks.publish(task, key=task_key(subscription, event), headers=[RESENT_HEADER])
        return task

    def read(self, partition: int, offset: int) -> Event:
        with _consumer(self.settings, "event-reader") as consumer:
            oldest, end = watermarks(consumer, TopicPartition(self.topic, partition))
            if offset < oldest:
                raise EventGone("event_id", f"the events topic no longer holds it (partition {partition} now "
                                            f"starts at offset {oldest}, past its retention)")
            message = next(_read(consumer, self.topic, {partition: offset}, {partition: min(offset + 1, end)}), None)
        if message is None:
            raise ServiceError(f"{self.topic} has no offset {offset} in partition {partition}")
        try:
            return decode_event(message.value())
        except InvalidEvent as exc:
            raise InvalidInput("event_id", f"the event was invalid, so there is nothing to resend: {exc}") from exc
