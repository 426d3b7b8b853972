"""Replay a subscription's deliveries from a time, and redrive dead letters.

Both append copies of the original tasks to the endpoint topic, with the same keys (so the
same partitions and order), after whatever is queued there: the dispatchers deliver them like
any other task, and nothing has to stop or move a consumer group's offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from confluent_kafka import Consumer, Message, TopicPartition

from pipeline.config import Settings
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.kafka.offsets import watermarks
from pipeline.topics import TopicNames


class Replayer:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.names = TopicNames.from_settings(settings)
        self._producer = reliable_producer(settings)

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
        """Sends dead-lettered tasks back to their endpoint topics: one subscription's, or all."""
        wanted = self._redrivable(subscription_id)
        copied = 0
        for message in _read_range(self.settings, self.names.dead_letters, since, None):
            source = dict(message.headers() or []).get("source", b"").decode()
            if wanted(source):
                self._copy(source, message, "redrive")
                copied += 1
        flush_or_raise(self._producer)
        return copied

    def _redrivable(self, subscription_id: str | None) -> Callable[[str], bool]:
        # Only tasks parked by a dispatcher: an invalid event from the events topic would fail again.
        if subscription_id is not None:
            topic = self.names.endpoint(subscription_id)
            return lambda source: source == topic
        prefix = self.names.endpoint("")
        return lambda source: source.startswith(prefix)

    def _copy(self, topic: str, message: Message, why: str) -> None:
        origin = f"{message.topic()}/{message.partition()}/{message.offset()}"
        self._producer.produce(topic, key=message.key(), value=message.value(),
                               headers=[("replayed", why.encode()), ("replayed-from", origin.encode())])
        self._producer.poll(0)


def _read_range(settings: Settings, topic: str, since: datetime | None, until: datetime | None) -> Iterator[Message]:
    """The topic's messages with timestamps in [since, until), as the topic stood when called."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "replayer",
                         "enable.auto.commit": False})
    try:
        starts, ends = _bounds(consumer, topic, since, until)
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items() if offset < ends[p]])
        remaining = {p for p, offset in starts.items() if offset < ends[p]}
        while remaining:
            message = consumer.poll(5.0)
            if message is None or message.error() is not None or message.partition() not in remaining:
                continue
            if message.offset() < ends[message.partition()]:
                yield message
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
    finally:
        consumer.close()


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
