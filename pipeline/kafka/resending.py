"""A producer that can be swapped for a new one without losing or reordering what it held.

It keeps every record until Kafka's report on it arrives. `replace()` (for a producer that is
stuck, see pipeline.kafka.stuck) purges the old producer, whose reports are then ignored, and
produces every record still unreported again through a new one, in the order first produced. A
record the old producer had sent, whose acknowledgement was lost, may so be in Kafka twice, as
after a crash; its copy never comes before anything produced ahead of it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from pipeline.kafka.stuck import StuckWatch

log = logging.getLogger(__name__)
Report = Callable[[KafkaError | None, Message], None]


@dataclass(slots=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    partition: int | None
    on_delivery: Report | None
    produced_at: float


class ResendingProducer:
    def __init__(self, new_producer: Callable[[], Producer]):
        self._new_producer = new_producer
        self._producer = new_producer()
        self._generation = 0  # of the producer: reports from a replaced one are ignored
        self._pending: dict[int, Record] = {}  # unreported, in the order produced
        self._numbers = itertools.count()
        # Records may be produced in one thread while another flushes (and replaces): a record is
        # produced through the producer that holds the others, never through one replaced.
        self._lock = threading.RLock()
        self._replaced_at = time.monotonic()

    def produce(self, topic: str, key: bytes | None, value: bytes | None, *,
                headers: list[tuple[str, bytes]] | None = None, partition: int | None = None,
                on_delivery: Report | None = None) -> None:
        """As Producer.produce: BufferError when the local queue is full (nothing is kept then)."""
        record = Record(topic, key, value, headers, partition, on_delivery, time.monotonic())
        with self._lock:
            number = next(self._numbers)
            self._pending[number] = record  # before: another thread may serve its report at once
            try:
                self._send(number, record)
            except BaseException:
                del self._pending[number]
                raise

    def _send(self, number: int, record: Record) -> None:
        where = {} if record.partition is None else {"partition": record.partition}
        self._producer.produce(record.topic, key=record.key, value=record.value, headers=record.headers,
                               on_delivery=partial(self._report, self._generation, number), **where)

    def _report(self, generation: int, number: int, error: KafkaError | None, message: Message) -> None:
        if generation != self._generation:
            return  # purged from a replaced producer: produced again through its successor
        record = self._pending.pop(number, None)
        if record is not None and record.on_delivery is not None:
            record.on_delivery(error, message)

    def replace(self) -> int:
        """Produces what is unreported again through a new producer; how many records that was."""
        with self._lock:
            stuck, self._producer = self._producer, self._new_producer()
            self._generation += 1
            stuck.purge()
            stuck.poll(0)
            self._replaced_at = time.monotonic()
            pending = list(self._pending.items())
            for number, record in pending:
                while True:
                    try:
                        self._send(number, record)
                        break
                    except BufferError:
                        self._producer.poll(0.05)
            return len(pending)

    def renew(self) -> bool:
        """A new producer in place of this one, if no record waits for its report (False if one
        does). librdkafka finds a topic by name in a list of every topic the producer has written
        to, and its broker thread serves each of their partitions on every turn: a router that had
        written to 5,000 endpoint topics spent half its CPU there."""
        with self._lock:
            if self._pending:
                return False
            retiring = [self._producer]
            self._producer = self._new_producer()
            self._generation += 1
        threading.Thread(target=_retire, args=(retiring,), name="retiring-producer", daemon=True).start()
        return True

    @property
    def unreported(self) -> int:
        return len(self._pending)

    def waiting_since(self) -> float:
        """When the oldest record still waiting for its report was produced (or last replaced):
        the clock's time now if none is waiting. One partition stuck while others flow shows here."""
        try:
            oldest = next(iter(self._pending.values()), None)
        except RuntimeError:  # changed by another thread's report meanwhile: it moved on
            return time.monotonic()
        return time.monotonic() if oldest is None else max(oldest.produced_at, self._replaced_at)

    def poll(self, timeout_s: float = 0) -> int:
        return self._producer.poll(timeout_s)

    def flush(self, timeout_s: float) -> int:
        return self._producer.flush(timeout_s)

    def purge(self) -> None:
        self._producer.purge()

    def __len__(self) -> int:
        return len(self._producer)


def _retire(retiring: list[Producer]) -> None:
    """Freeing a producer joins its threads: the caller keeps no reference to it, so it is freed
    here, on a thread of its own, not in the caller's (a router's event loop)."""
    producer = retiring.pop()
    producer.flush(0)


def replace_if_stuck(producer: ResendingProducer, stuck: StuckWatch) -> None:
    """Cheap unless it is time to ask the broker (see StuckWatch.stuck): call it while waiting."""
    if stuck.due() and stuck.stuck(producer.waiting_since()):  # due() first: this runs on hot paths
        log.warning("Kafka answers, but a record has waited for its acknowledgement for %.0f s: "
                    "writing the %d waiting again through a new producer", stuck.after_s, producer.unreported)
        producer.replace()


def flush_replacing_stuck(producer: ResendingProducer, stuck: StuckWatch, timeout_s: float,
                          patience_s: float = 5.0) -> int:
    """Flushes for up to `timeout_s`, replacing the producer if it is stuck meanwhile; returns how
    many records are still unacknowledged."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not (remaining := producer.flush(max(0.0, min(patience_s, deadline - time.monotonic())))):
            return 0
        replace_if_stuck(producer, stuck)
        if time.monotonic() >= deadline:
            return remaining
