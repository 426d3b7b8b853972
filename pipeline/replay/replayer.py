"""Replay a subscription's deliveries from a time, and redrive dead letters.

Both append copies of the original tasks to the endpoint topic, with the same keys (so the
same partitions and order), after whatever is queued there: the dispatchers deliver them like
any other task, and nothing has to stop or move a consumer group's offsets. A dead letter that
holds only a reference to its task (one too large to park whole) is redriven from the task
itself, read again from its endpoint topic while Kafka keeps it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from confluent_kafka import Consumer, Message, TopicPartition

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.clients import LIBRDKAFKA_LOG, flush_or_raise, reliable_producer
from pipeline.kafka.wakeups import Doorbells
from pipeline.kafka.dead_letters import is_reference
from pipeline.kafka.offsets import watermarks
from pipeline.kafka.writer import record_size
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)
STALL_TIMEOUT_S = 30.0


class Replayer:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.names = TopicNames.from_settings(settings)
        self._producer = reliable_producer(settings)
        self._doorbells = Doorbells(lambda topic, key, value: self._producer.produce(topic, key=key, value=value),
                                    self.names)

    def replay(self, subscription_id: str, since: datetime, until: datetime | None = None) -> int:
        """Delivers again every task routed to the subscription between since and until."""
        topic = self.names.endpoint(subscription_id)
        copied = 0
        for message in _read_range(self.settings, topic, since, until):
            self._copy(topic, message, "replay")
            copied += 1
        flush_or_raise(self._producer)
        return copied

    def redrive(self, since: datetime | None = None, subscription_id: str | None = None) -> int:
        """Sends dead-lettered tasks back to their endpoint topics: one subscription's, or all.

        Without `since`, one subscription's redrive takes up where its last one ended, so a task
        parked once is sent back once; with `since`, everything parked from then on is."""
        wanted = self._redrivable(subscription_id)
        topic = self.names.dead_letters
        marker = self._marker(subscription_id) if since is None and subscription_id else None
        with _consumer(self.settings, marker or "replayer") as consumer:
            starts, ends = _bounds(consumer, topic, since, None)
            if marker:
                starts = _committed(consumer, topic, starts)
            copied = 0
            for message in _read(consumer, topic, starts, ends):
                headers = dict(message.headers() or [])
                source = headers.get("source", b"").decode()
                if wanted(source) and (task := self._parked_task(message, headers)) is not None:
                    self._copy(source, task, "redrive", origin=message)
                    copied += 1
            flush_or_raise(self._producer)
            if marker:  # only once the copies are in Kafka
                consumer.commit(offsets=[TopicPartition(topic, p, end) for p, end in ends.items()],
                                asynchronous=False)
        return copied

    def _marker(self, subscription_id: str) -> str:
        """The consumer group whose offsets say how far this subscription's dead letters were redriven."""
        return f"{self.names.prefix}redrive.{subscription_id}"

    def _redrivable(self, subscription_id: str | None) -> Callable[[str], bool]:
        # Only tasks parked by a dispatcher: an invalid event from the events topic would fail again.
        if subscription_id is not None:
            topic = self.names.endpoint(subscription_id)
            return lambda source: source == topic
        prefix = self.names.endpoint("")
        return lambda source: source.startswith(prefix)

    def _parked_task(self, dead_letter: Message, headers: dict[str, bytes]) -> Message | None:
        """The dead letter itself, or for a reference the task it refers to (None once it is gone)."""
        if not is_reference(headers):
            return dead_letter
        where = "/".join(headers.get(name, b"?").decode() for name in ("source-topic", "source-partition", "source-offset"))
        task = _read_one(self.settings, headers["source-topic"].decode(), int(headers["source-partition"]),
                         int(headers["source-offset"]))
        if task is None or hashlib.sha256(task.value() or b"").hexdigest().encode() != headers.get("source-sha256"):
            log.warning("not redriving the dead letter at offset %d: the task it refers to, at %s, is no longer "
                        "in Kafka", dead_letter.offset(), where)
            return None
        return task

    def _copy(self, topic: str, message: Message, why: str, origin: Message | None = None) -> None:
        origin = origin or message
        where = f"{origin.topic()}/{origin.partition()}/{origin.offset()}"
        key, value = message.key(), message.value() or b""
        headers = [("replayed", why.encode()), ("replayed-from", where.encode())]
        if record_size(key, value, headers) > self.settings.max_record_bytes:
            headers = []  # they only say where a copy came from; a task too large for them goes without
        self._producer.produce(topic, key=key, value=value, headers=headers)
        self._doorbells.ring(self.names.subscription_of(topic))  # a quiet endpoint's partition is parked
        self._producer.poll(0)


def _read_range(settings: Settings, topic: str, since: datetime | None, until: datetime | None) -> Iterator[Message]:
    """The topic's messages with timestamps in [since, until), as the topic stood when called."""
    with _consumer(settings, "replayer") as consumer:
        starts, ends = _bounds(consumer, topic, since, until)
        yield from _read(consumer, topic, starts, ends)


def _read_one(settings: Settings, topic: str, partition: int, offset: int) -> Message | None:
    """The record at one offset, or None if Kafka no longer holds it."""
    with _consumer(settings, "replayer") as consumer:
        low, high = watermarks(consumer, TopicPartition(topic, partition))
        if not low <= offset < high:
            return None
        return next(_read(consumer, topic, {partition: offset}, {partition: offset + 1}), None)


@contextmanager
def _consumer(settings: Settings, group: str) -> Iterator[Consumer]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False, "logger": LIBRDKAFKA_LOG})
    try:
        yield consumer
    finally:
        consumer.close()


def _read(consumer: Consumer, topic: str, starts: dict[int, int], ends: dict[int, int]) -> Iterator[Message]:
    """Each partition's messages from its start to its end; raises when Kafka gives none for a while."""
    remaining = {p for p, offset in starts.items() if offset < ends[p]}
    consumer.assign([TopicPartition(topic, p, starts[p]) for p in remaining])
    last_progress = time.monotonic()
    while remaining:
        message = consumer.poll(1.0)
        if message is None or message.error() is not None or message.partition() not in remaining:
            if time.monotonic() - last_progress > STALL_TIMEOUT_S:
                raise ServiceError(f"no message of {topic} came from Kafka for {STALL_TIMEOUT_S:.0f} s; "
                                   f"{len(remaining)} partitions were not read to their end")
            continue
        last_progress = time.monotonic()
        if message.offset() < ends[message.partition()]:
            yield message
        if message.offset() + 1 >= ends[message.partition()]:
            remaining.discard(message.partition())


def _committed(consumer: Consumer, topic: str, defaults: dict[int, int]) -> dict[int, int]:
    """The group's committed offset in each partition, where it has one."""
    found = consumer.committed([TopicPartition(topic, p) for p in defaults], timeout=15)
    return {tp.partition: tp.offset if tp.offset >= 0 else defaults[tp.partition] for tp in found}


def _bounds(consumer: Consumer, topic: str, since: datetime | None,
            until: datetime | None) -> tuple[dict[int, int], dict[int, int]]:
    partitions = list(consumer.list_topics(topic, timeout=15).topics[topic].partitions)
    highs = {p: watermarks(consumer, TopicPartition(topic, p))[1] for p in partitions}
    starts = _offsets_at(consumer, topic, partitions, since, default=lambda p: 0)
    ends = _offsets_at(consumer, topic, partitions, until, default=highs.__getitem__)
    return starts, {p: min(ends[p], highs[p]) for p in partitions}


def _offsets_at(consumer: Consumer, topic: str, partitions: list[int], moment: datetime | None,
                default: Callable[[int], int]) -> dict[int, int]:
    """The first offset at or after the moment in each partition (-1 from Kafka means none: the end)."""
    if moment is None:
        return {p: default(p) for p in partitions}
    millis = int(moment.timestamp() * 1000)
    found = consumer.offsets_for_times([TopicPartition(topic, p, millis) for p in partitions], timeout=15)
    return {tp.partition: tp.offset if tp.offset >= 0 else watermarks(consumer, tp)[1] for tp in found}
