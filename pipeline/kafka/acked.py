"""A producer for asyncio servers: each caller awaits Kafka's acknowledgement of its own messages.

One confluent-kafka producer (idempotent, acks=all, the SDK's settings) is shared by every request.
While acknowledgements are outstanding, a task on the event loop serves the producer's delivery
reports every millisecond, settling each message's future; it stops when none are. So a request
waits for its own messages only, never for a flush of everything in flight, and concurrent
requests share produce batches. A producer stuck while the broker answers is replaced, what it
held sent again in order by a new one (see pipeline.kafka.stuck and pipeline.kafka.resending).
(confluent-kafka's AIOProducer buffers in Python for up to its
buffer timeout and acknowledges through flushes of everything queued; serving the reports from a
thread of our own cost more per message than this, in handing the GIL back and forth.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.kafka.resending import ResendingProducer, replace_if_stuck
from pipeline.kafka.stuck import StuckWatch

REPORTS_EVERY_S = 0.001
FULL_QUEUE_WAIT_S = 0.005


class Outgoing:
    """One message to write: topic, key and value; the partition if not the key's."""

    __slots__ = ("topic", "key", "value", "partition")

    def __init__(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None):
        self.topic, self.key, self.value, self.partition = topic, key, value, partition


class AcknowledgedProducer:
    def __init__(self, settings: Settings, stuck: StuckWatch | None = None, **overrides: Any):
        self._settings, self._overrides = settings, overrides
        self._producer = ResendingProducer(self._new_producer)
        self._stuck = stuck or StuckWatch.of_broker(settings.kafka_bootstrap_servers)
        self._outstanding = 0
        self._reports: asyncio.Task | None = None

    def _new_producer(self) -> Any:
        return reliable_producer(self._settings, **self._overrides)

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Returns once Kafka has acknowledged every message; raises ServiceError if it refused one."""
        loop = asyncio.get_running_loop()
        acknowledged = [loop.create_future() for _ in messages]
        for message, future in zip(messages, acknowledged, strict=True):
            await self._produce(message, self._settler(future))
        errors = [error for error in await asyncio.gather(*acknowledged) if error is not None]
        if errors:
            raise ServiceError(f"Kafka did not take {len(errors)} of {len(messages)} messages: {errors[0]}")

    async def _produce(self, message: Outgoing, on_delivery: Any) -> None:
        self._outstanding += 1
        if self._reports is None or self._reports.done():
            self._reports = asyncio.create_task(self._serve_reports(), name="kafka-acks")
        while True:
            try:
                self._producer.produce(message.topic, message.key, message.value, on_delivery=on_delivery,
                                       partition=message.partition)
                return
            except BufferError:  # the local queue is full: let the reports drain it
                await asyncio.sleep(FULL_QUEUE_WAIT_S)

    def _settler(self, future: asyncio.Future) -> Any:
        """A delivery report callback settling the future: None once acknowledged, or the error's text."""

        def settle(error: KafkaError | None, _: Message) -> None:
            self._outstanding -= 1
            if not future.done():  # a cancelled caller (its client went away) has nobody to tell
                future.set_result(None if error is None else str(error))

        return settle

    async def _serve_reports(self) -> None:
        while self._outstanding > 0:
            self._producer.poll(0)
            if self._stuck.due() and self._stuck.worth_asking(self._producer.waiting_since()):
                # The look may take a moment, and the replacing too: not on the loop.
                await asyncio.to_thread(replace_if_stuck, self._producer, self._stuck)
            await asyncio.sleep(REPORTS_EVERY_S)

    def close(self, timeout_s: float = 30.0) -> None:
        """Waits for what is queued (its callers, if any are left, are not told)."""
        flush_or_raise(self._producer, timeout_s)
