"""Publishes events, Avro single-object encoded, keyed by ordering key.

Idempotent with acks=all: a publish that returns was written once, in order per key.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, Message

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.models import Event, validated
from pipeline.topics import TopicNames


class EventPublisher:
    def __init__(self, settings: Settings):
        self.topic = TopicNames.from_settings(settings).events
        self._producer = reliable_producer(settings)
        self._errors: list[str] = []

    def publish(self, event: Event) -> None:
        """Queues the event; `flush()` waits until Kafka has acknowledged everything queued."""
        while True:
            try:
                self._producer.produce(self.topic, key=event.partition_key, value=event.to_avro(),
                                       on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain, then retry
        self._producer.poll(0)

    def publish_fields(self, **fields: Any) -> Event:
        event = validated(Event, **fields)
        self.publish(event)
        return event

    def flush(self, timeout_s: float = 60.0) -> None:
        flush_or_raise(self._producer, timeout_s)
        if self._errors:
            errors, self._errors = self._errors, []
            raise ServiceError(f"{len(errors)} events were not published; first: {errors[0]}")

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(str(error))
