"""Publishes events, Avro single-object encoded, keyed by ordering key.

Idempotent with acks=all: a publish that returns was written once, in order per key. A producer
stuck while the broker answers is replaced during a flush, what it held written again, in order,
by a new one (see pipeline.kafka.stuck).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, Message

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.clients import reliable_producer
from pipeline.kafka.resending import ResendingProducer, flush_replacing_stuck, replace_if_stuck
from pipeline.kafka.stuck import StuckWatch
from pipeline.models import Event, validated
from pipeline.topics import TopicNames


class EventPublisher:
    def __init__(self, settings: Settings):
        self.topic = TopicNames.from_settings(settings).events
        self._producer = ResendingProducer(lambda: reliable_producer(settings))
        self._stuck = StuckWatch.of_broker(settings.kafka_bootstrap_servers)
        self._errors: list[str] = []

    def publish(self, event: Event) -> None:
        """Queues the event; `flush()` waits until Kafka has acknowledged everything queued."""
        while True:
            try:
                self._producer.produce(self.topic, event.partition_key, event.to_avro(), on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain, then retry
                replace_if_stuck(self._producer, self._stuck)
        self._producer.poll(0)
        replace_if_stuck(self._producer, self._stuck)  # cheap, unless records wait: see StuckWatch

    def publish_fields(self, **fields: Any) -> Event:
        event = validated(Event, **fields)
        self.publish(event)
        return event

    def flush(self, timeout_s: float = 60.0) -> None:
        if remaining := flush_replacing_stuck(self._producer, self._stuck, timeout_s):
            raise ServiceError(f"{remaining} messages were not acknowledged by Kafka within {timeout_s:.0f} s")
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
