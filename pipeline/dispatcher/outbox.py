"""What the dispatcher writes back to Kafka: attempt records and dead letters.

Writes are queued without waiting; `flush()` is awaited before offsets are committed, so a
committed task always has its results in Kafka. A write that failed makes every later flush
fail too: the tasks it belonged to may already be finished, so no offset may be committed
past them again; the process stops and Kafka redelivers from the last commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from confluent_kafka import KafkaError, Message

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.admin import RETRY_TIERS_S
from pipeline.kafka.clients import reliable_producer
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, settings: Settings):
        names = self.names = TopicNames.from_settings(settings)
        self.results_topic = names.results
        self.dead_letters_topic = names.dead_letters
        self._producer = reliable_producer(settings, **{"linger.ms": 20})
        self._codec = codec("delivery_attempt")
        self.broken: str | None = None  # why nothing may be committed any more, once a write failed

    def attempt(self, record: dict[str, Any]) -> None:
        self._produce(self.results_topic, record["subscription_id"].encode(), self._codec.encode(record), None)

    def dead_letter(self, key: bytes | None, value: bytes, reason: str, source: str) -> None:
        headers = [("error", reason.encode()), ("source", source.encode())]
        self._produce(self.dead_letters_topic, key, value, headers)

    def defer(self, record: Any, attempt: int, delay_s: float) -> None:
        """Parks a task of an unordered subscription in a delay topic; the relay sends it back when due."""
        tier = max([t for t in RETRY_TIERS_S if t <= delay_s] or [RETRY_TIERS_S[0]])
        due_ms = int((time.time() + delay_s) * 1000)
        headers = [("source", record.topic.encode()), ("attempt", str(attempt).encode()),
                   ("due-at", str(due_ms).encode())]
        self._produce(self.names.retry_tier(tier), record.key, record.value, headers)

    def produce_raw(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self._produce(topic, key, value, headers)

    async def flush(self) -> None:
        """Waits for every queued write; raises if any write so far was not acknowledged."""
        remaining = await asyncio.to_thread(self._producer.flush, 30.0)
        if remaining and self.broken is None:
            self.broken = f"{remaining} records still pending after 30 s"
        if self.broken is not None:
            raise ServiceError(f"results not acknowledged by Kafka ({self.broken}); nothing more may be committed")

    def _produce(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            log.error("a record for %s was not written: %s", message.topic(), error)
            self.broken = self.broken or f"a record for {message.topic()} was not written: {error}"
