"""How far a consumer group is behind on some topics: pending messages, and the oldest one's time.

Pending is each partition's end offset minus the group's committed offset (or minus the log start,
where the group committed nothing yet or retention passed its offset). The oldest pending message
is the record at that offset: its Kafka timestamp is when it was written. Every question is asked
of the broker in one batch whatever the number of topics (metadata, committed offsets, then start
and end offsets), and the oldest records are fetched by one short-lived consumer, only for the
partitions with something pending: ten thousand endpoint topics cost a handful of requests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from pipeline.errors import ServiceError
from pipeline.kafka.clients import LIBRDKAFKA_LOG
from pipeline.kafka.offsets import committed_offsets, list_offsets

OLDEST_FETCH_S = 5.0
REQUEST_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class TopicLag:
    topic: str
    pending: int
    oldest_ms: int | None  # the Kafka timestamp of the oldest pending message; None when nothing is pending

    def oldest_age_s(self, now_s: float) -> float | None:
        return None if self.oldest_ms is None else max(0.0, now_s - self.oldest_ms / 1000)


class GroupLag:
    """Reads a group's lag on topics through an admin client, and a consumer made for each read."""

    def __init__(self, admin: AdminClient, bootstrap_servers: str, group_id: str):
        self.admin = admin
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id

    def read(self, topics: Iterable[str], *, oldest: bool = True) -> dict[str, TopicLag]:
        """The lag on each of the topics that exist (a missing one is left out); with `oldest`, the
        time of the oldest pending message of each topic that has any."""
        partitions = self._partitions(sorted(set(topics)))
        if not partitions:
            return {}
        starts = self._positions(partitions)
        pending = {tp: max(0, end - start) for tp, (start, end) in starts.items()}
        first = {tp: starts[tp][0] for tp, count in pending.items() if count}
        stamps = self._timestamps(first) if oldest and first else {}
        lags: dict[str, TopicLag] = {}
        for (topic, partition), count in pending.items():
            before = lags.get(topic, TopicLag(topic, 0, None))
            stamp = stamps.get((topic, partition))
            oldest_ms = min((s for s in (before.oldest_ms, stamp) if s is not None), default=None)
            lags[topic] = TopicLag(topic, before.pending + count, oldest_ms)
        return lags

    def _partitions(self, topics: list[str]) -> list[TopicPartition]:
        try:
            # One topic is asked by name; many at once, by one request for every topic's metadata.
            metadata = self.admin.list_topics(topic=topics[0] if len(topics) == 1 else None, timeout=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            raise ServiceError(f"cannot read topic metadata from Kafka: {exc}") from exc
        found = []
        for topic in topics:
            described = metadata.topics.get(topic)
            if described is not None and described.error is None:
                found.extend(TopicPartition(topic, p) for p in sorted(described.partitions))
        return found

    def _positions(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], tuple[int, int]]:
        """(where the group's next message is, end offset) per partition."""
        committed = self._committed(partitions)
        earliest = self._offsets(partitions, OffsetSpec.earliest())
        latest = self._offsets(partitions, OffsetSpec.latest())
        positions = {}
        for key, end in latest.items():
            start = earliest.get(key, 0)
            positions[key] = (max(committed.get(key, -1), start), end)
        return positions

    def _committed(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        try:
            return committed_offsets(self.bootstrap_servers, self.group_id, partitions, REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            raise ServiceError(f"cannot read the committed offsets of group {self.group_id}: {exc}") from exc

    def _offsets(self, partitions: list[TopicPartition], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        # A partition without a leader just now is left out.
        return list_offsets(self.admin, [(tp.topic, tp.partition) for tp in partitions], spec, REQUEST_TIMEOUT_S)[0]

    def _timestamps(self, offsets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """The Kafka timestamp of the record at each offset, fetched all at once."""
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap_servers,
            # Never joins nor commits: partitions are assigned by hand; the id only satisfies the client.
            "group.id": f"{self.group_id}-lag-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "max.partition.fetch.bytes": 64 * 1024,  # one record is all we want (a larger one still comes whole)
            "logger": LIBRDKAFKA_LOG,
        })
        wanted = dict(offsets)
        stamps: dict[tuple[str, int], int] = {}
        try:
            consumer.assign([TopicPartition(topic, partition, offset) for (topic, partition), offset in wanted.items()])
            deadline = time.monotonic() + OLDEST_FETCH_S
            while wanted and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=max(1, len(wanted)), timeout=0.2):
                    key = (message.topic(), message.partition())
                    if message.error() is None and key in wanted:
                        stamps[key] = message.timestamp()[1]
                        del wanted[key]
                        consumer.pause([TopicPartition(*key)])
        finally:
            consumer.close()
        return stamps
