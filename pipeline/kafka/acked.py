"""A producer for asyncio servers: each caller awaits Kafka's acknowledgement of its own messages.

One confluent-kafka producer (idempotent, acks=all, the SDK's settings) is shared by every request;
a thread serves its delivery reports and settles each message's future on the event loop. So a
request waits for its own messages only, never for a flush of everything in flight, and
concurrent requests share produce batches. (confluent-kafka's AIOProducer buffers in Python for up
to its buffer timeout and acknowledges through flushes of everything queued.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.clients import flush_or_raise, reliable_producer

POLL_S = 0.1
FULL_QUEUE_WAIT_S = 0.005


class Outgoing:
    """One message to write: topic, key and value."""

    __slots__ = ("topic", "key", "value")

    def __init__(self, topic: str, key: bytes | None, value: bytes):
        self.topic, self.key, self.value = topic, key, value


class AcknowledgedProducer:
    def __init__(self, settings: Settings, **overrides: Any):
        self._producer = reliable_producer(settings, **overrides)
        self._stopping = threading.Event()
        self._reports = threading.Thread(target=self._serve_reports, name="kafka-acks", daemon=True)
        self._reports.start()

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Returns once Kafka has acknowledged every message; raises ServiceError if it refused one."""
        loop = asyncio.get_running_loop()
        acknowledged = [loop.create_future() for _ in messages]
        for message, future in zip(messages, acknowledged, strict=True):
            await self._produce(message, _settler(loop, future))
        errors = [error for error in await asyncio.gather(*acknowledged) if error is not None]
        if errors:
            raise ServiceError(f"Kafka did not take {len(errors)} of {len(messages)} messages: {errors[0]}")

    async def _produce(self, message: Outgoing, on_delivery: Any) -> None:
        while True:
            try:
                self._producer.produce(message.topic, key=message.key, value=message.value, on_delivery=on_delivery)
                return
            except BufferError:  # the local queue is full: give the reports thread time to drain it
                await asyncio.sleep(FULL_QUEUE_WAIT_S)

    def _serve_reports(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(POLL_S)

    def close(self, timeout_s: float = 30.0) -> None:
        """Waits for what is queued, then stops the reports thread."""
        try:
            flush_or_raise(self._producer, timeout_s)
        finally:
            self._stopping.set()
            self._reports.join()


def _settler(loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> Any:
    """A delivery report callback (run on the reports thread) settling the future on its loop:
    with None once acknowledged, or the error's text."""

    def settle(error: KafkaError | None, _: Message) -> None:
        try:
            loop.call_soon_threadsafe(_resolve, future, None if error is None else str(error))
        except RuntimeError:  # the loop has closed: its caller is gone
            pass

    return settle


def _resolve(future: asyncio.Future, outcome: str | None) -> None:
    if not future.done():  # a caller cancelled (its client went away) has nobody to tell
        future.set_result(outcome)
