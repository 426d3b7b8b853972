"""Writes to Kafka that a stage must see acknowledged before it commits what caused them.

`write()` queues without waiting; `flush()` waits for everything queued and raises if any write
so far was refused. A broker away is waited out, however long: librdkafka retries each write
until it is acknowledged (`message.timeout.ms` 0, no time limit; idempotence keeps the retries
from writing twice or out of order), `flush()` waits with it and nothing is committed
meanwhile, so a stage carries on where it was once the broker is back; one WARNING line says
when the waiting began, one INFO line when it ended. A producer stuck while the broker answers
(see pipeline.kafka.stuck) is replaced, and what it held written again, in order, by a new one
(see pipeline.kafka.resending). A write refused for good makes every later
flush fail: the input it belonged to may be finished already, so nothing may be committed past
it again; the process stops, and Kafka redelivers from the last commit. A write Kafka would
refuse at once (a record over `max_record_bytes`) fails the same way, so callers ask `fits()`
first and decide what to write instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.clients import reliable_producer
from pipeline.kafka.resending import ResendingProducer, flush_replacing_stuck, replace_if_stuck
from pipeline.kafka.stuck import StuckWatch

log = logging.getLogger(__name__)
# How long a flush waits before it says it is waiting for the broker (and between its looks).
PATIENCE_S = 5.0
# Topics a producer may have written to before a flush that leaves nothing waiting renews it (see
# ResendingProducer.renew): the router writes to every endpoint's topic, most of them rarely.
RENEW_AFTER_TOPICS = 500
Headers = list[tuple[str, bytes]] | None
# librdkafka counts a record as key + value + headers + a fixed overhead (36 bytes, and about 3
# per header, measured): these round up, so a record that fits here is never refused there.
RECORD_OVERHEAD_BYTES = 64
HEADER_OVERHEAD_BYTES = 10


def record_size(key: bytes | None, value: bytes, headers: Headers = None) -> int:
    """A record's size as the producer's message.max.bytes limit counts it, rounded up."""
    header_bytes = sum(len(name) + len(data or b"") + HEADER_OVERHEAD_BYTES for name, data in headers or ())
    return RECORD_OVERHEAD_BYTES + len(key or b"") + len(value) + header_bytes


class KafkaWriter:
    def __init__(self, settings: Settings, stuck: StuckWatch | None = None, renew_after_topics: int = RENEW_AFTER_TOPICS,
                 **producer_overrides: Any):
        self.max_record_bytes = settings.max_record_bytes
        self._renew_after_topics = renew_after_topics
        self._topics: set[str] = set()  # written to through the producer now in use
        self._settings, self._overrides = settings, {"message.timeout.ms": 0, **producer_overrides}
        self._producer = ResendingProducer(self._new_producer)
        self._stuck = stuck or StuckWatch.of_broker(settings.kafka_bootstrap_servers)
        self.broken: str | None = None  # why nothing may be committed any more, once a write failed
        self._queue_full = BrokerWait()
        self._unacknowledged = BrokerWait()

    def _new_producer(self) -> Any:
        return reliable_producer(self._settings, **self._overrides)

    def fits(self, key: bytes | None, value: bytes, headers: Headers = None) -> bool:
        return record_size(key, value, headers) <= self.max_record_bytes

    def write(self, topic: str, key: bytes | None, value: bytes, headers: Headers = None) -> None:
        """Queues a record; raises ServiceError, and fails every later flush, if it cannot be queued."""
        if not self.fits(key, value, headers):
            self._refused(topic, f"{record_size(key, value, headers)} bytes is over the limit of {self.max_record_bytes}")
        self._topics.add(topic)
        while True:
            try:
                self._producer.produce(topic, key, value, headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:  # the local queue is full: let deliveries drain, then queue again
                self._producer.poll(0.05)
                self._queue_full.waiting(len(self._producer), "take the records queued before")
                replace_if_stuck(self._producer, self._stuck)
            except KafkaException as exc:
                self._refused(topic, str(exc))
        self._queue_full.ended()
        self._producer.poll(0)

    def _refused(self, topic: str, why: str) -> None:
        reason = f"a record for {topic} was refused: {why}"
        log.error("%s", reason)
        self.broken = self.broken or reason
        raise ServiceError(f"{reason}; nothing more may be committed")

    def flush_now(self) -> None:
        """Blocks until everything queued is acknowledged, however long the broker is away; raises
        if a write was refused, now or before."""
        while (remaining := flush_replacing_stuck(self._producer, self._stuck, PATIENCE_S)) and self.broken is None:
            self._unacknowledged.waiting(remaining, "acknowledge")
        self._unacknowledged.ended()
        if self.broken is not None:
            raise ServiceError(f"writes not acknowledged by Kafka ({self.broken}); nothing more may be committed")
        if len(self._topics) > self._renew_after_topics and self._producer.renew():
            self._topics.clear()

    async def flush(self) -> None:
        await asyncio.to_thread(self.flush_now)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            log.error("a record for %s was not written: %s", message.topic(), error)
            self.broken = self.broken or f"a record for {message.topic()} was not written: {error}"


class BrokerWait:
    """Says once that writes are waiting for the broker, and once that the waiting ended."""

    def __init__(self) -> None:
        self.since: float | None = None

    def waiting(self, records: int, what: str) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("waiting for Kafka to %s %d records; nothing is committed until it does", what, records)

    def ended(self) -> None:
        if self.since is not None:
            log.info("Kafka took the records waited for after %.1f s; carrying on", time.monotonic() - self.since)
            self.since = None
