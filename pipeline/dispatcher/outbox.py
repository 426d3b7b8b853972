"""What the dispatcher writes back to Kafka: attempt records, dead letters, delayed retries.

An attempt's intents are the one write awaited before going on: the request is sent only once
Kafka holds them (`announce`), written at once (no linger), so this costs a round trip to the
broker, about a millisecond locally. Other writes are queued without waiting; `flush()` is
awaited before offsets are committed, so a committed task always has its results in Kafka (see
KafkaWriter: one failed write fails every later flush, and the process stops rather than commit
past it).
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.kafka.acked import AcknowledgedProducer, Outgoing
from pipeline.kafka.admin import RETRY_TIERS_S, retry_tier
from pipeline.kafka.dead_letters import dead_letter
from pipeline.kafka.position import Position
from pipeline.kafka.wakeups import ring
from pipeline.kafka.writer import KafkaWriter
from pipeline.topics import TopicNames


class Outbox:
    def __init__(self, settings: Settings):
        names = self.names = TopicNames.from_settings(settings)
        self.results_topic = names.results
        self.dead_letters_topic = names.dead_letters
        self._writer = KafkaWriter(settings, **{"linger.ms": 20})
        self._intents = AcknowledgedProducer(settings, **{"linger.ms": 0})
        self._codec = codec("delivery_attempt")

    @property
    def broken(self) -> str | None:
        """Why nothing may be committed any more, once a write failed."""
        return self._writer.broken

    def attempt(self, record: dict[str, Any]) -> None:
        self._writer.write(self.results_topic, record["subscription_id"].encode(), self._codec.encode(record))

    async def announce(self, intents: list[dict[str, Any]]) -> None:
        """Returns once Kafka holds the intents; raises ServiceError if it refused one (then the
        request is not sent, and the lane tries again). Keyed like the outcome records, so an
        intent and the outcome closing it are in the same partition, the intent first."""
        await self._intents.send([Outgoing(self.results_topic, intent["subscription_id"].encode(),
                                           self._codec.encode(intent)) for intent in intents])

    def dead_letter(self, record: Any, reason: str) -> None:
        """Parks a task with the reason; a task too large to park whole leaves a reference to it
        (see pipeline.kafka.dead_letters). `source` names the endpoint topic a redrive sends it to."""
        dead_letter(self._writer, self.dead_letters_topic, record.key, record.value or b"", Position.of(record),
                    reason, [("source", record.topic.encode())])

    def defer(self, record: Any, attempt: int, delay_s: float) -> bool:
        """Parks a task of an unordered subscription in the delay topics; the relay sends it back
        to its endpoint topic when due. False if the task is too large to carry the headers it
        needs there: it must wait where it is."""
        due_ms = int((time.time() + delay_s) * 1000)
        headers = [("source", record.topic.encode()), ("attempt", str(attempt).encode()),
                   ("due-at", str(due_ms).encode())]
        if not self._writer.fits(record.key, record.value, headers):
            return False
        self.park(record.key, record.value, headers, delay_s)
        return True

    def park(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]], remaining_s: float) -> None:
        """Into the tier for what remains of the wait (at least the shortest tier)."""
        tier = retry_tier(remaining_s) or RETRY_TIERS_S[0]
        self._writer.write(self.names.retry_tier(tier), key, value, headers)

    def produce_raw(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """A task back to its endpoint topic, from the delay topics; its doorbell wakes it if parked."""
        self._writer.write(topic, key, value, headers)
        ring(self._writer.write, self.names, self.names.subscription_of(topic))

    async def flush(self) -> None:
        """Waits for every queued write; raises if any write so far was not acknowledged."""
        await self._writer.flush()
