"""Writes to Kafka that a stage must see acknowledged before it commits what caused them.

`write()` queues without waiting; `flush()` waits for everything queued and raises if any write
so far was not acknowledged. A failed write makes every later flush fail too: the input it
belonged to may be finished already, so nothing may be committed past it again; the process
stops, and Kafka redelivers from the last commit. A write Kafka would refuse at once (a record
over `max_record_bytes`) fails the same way, so callers ask `fits()` first and decide what to
write instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.clients import reliable_producer

log = logging.getLogger(__name__)
FLUSH_TIMEOUT_S = 30.0
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
    def __init__(self, settings: Settings, **producer_overrides: Any):
        self.max_record_bytes = settings.max_record_bytes
        self._producer = reliable_producer(settings, **producer_overrides)
        self.broken: str | None = None  # why nothing may be committed any more, once a write failed

    def fits(self, key: bytes | None, value: bytes, headers: Headers = None) -> bool:
        return record_size(key, value, headers) <= self.max_record_bytes

    def write(self, topic: str, key: bytes | None, value: bytes, headers: Headers = None) -> None:
        """Queues a record; raises ServiceError, and fails every later flush, if it cannot be queued."""
        if not self.fits(key, value, headers):
            self._refused(topic, f"{record_size(key, value, headers)} bytes is over the limit of {self.max_record_bytes}")
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:  # the local queue is full: let deliveries drain, then queue again
                self._producer.poll(0.05)
            except KafkaException as exc:
                self._refused(topic, str(exc))
        self._producer.poll(0)

    def _refused(self, topic: str, why: str) -> None:
        reason = f"a record for {topic} was refused: {why}"
        log.error("%s", reason)
        self.broken = self.broken or reason
        raise ServiceError(f"{reason}; nothing more may be committed")

    def flush_now(self) -> None:
        """Blocks until everything queued is acknowledged; raises if a write failed, now or before."""
        remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        if remaining and self.broken is None:
            self.broken = f"{remaining} records still pending after {FLUSH_TIMEOUT_S:.0f} s"
        if self.broken is not None:
            raise ServiceError(f"writes not acknowledged by Kafka ({self.broken}); nothing more may be committed")

    async def flush(self) -> None:
        await asyncio.to_thread(self.flush_now)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            log.error("a record for %s was not written: %s", message.topic(), error)
            self.broken = self.broken or f"a record for {message.topic()} was not written: {error}"
