"""Records a consumer will never read: its committed offset is older than its partition's log start.

Kafka deleted them (a retention, a `delete_records`) before they were consumed, and a consumer
resuming there would jump to the log start without a word. Instead the loss is reported: which
partition, which offsets, how many, in a WARNING line, an operator event
(`pipeline.records.lost`, which operators subscribe to like to any other event) and every loss
listener (a metrics counter adds itself with `add_loss_listener`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.offsets import committed_offsets, list_offsets
from pipeline.producer import EventPublisher

log = logging.getLogger(__name__)
LOST_EVENT = "pipeline.records.lost"
TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class LostRange:
    topic: str
    partition: int
    first_offset: int
    last_offset: int  # inclusive

    @property
    def count(self) -> int:
        return self.last_offset - self.first_offset + 1


LossListener = Callable[[LostRange, str], None]  # the range, and the consumer that lost it
_listeners: list[LossListener] = []


def add_loss_listener(listener: LossListener) -> None:
    _listeners.append(listener)


def lost_ranges(committed: Mapping[tuple[str, int], int], log_starts: Mapping[tuple[str, int], int]) -> list[LostRange]:
    """The offsets from each committed offset up to its partition's log start, where that is later.
    A partition never committed (negative offset) or whose log start is unknown loses nothing here."""
    return [LostRange(topic=topic, partition=partition, first_offset=offset, last_offset=log_starts[topic, partition] - 1)
            for (topic, partition), offset in sorted(committed.items())
            if offset >= 0 and log_starts.get((topic, partition), -1) > offset]


def log_starts(admin: AdminClient, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Each partition's earliest offset still held; one request for all of them. A partition the
    broker did not answer for is left out."""
    starts, failed = list_offsets(admin, partitions, OffsetSpec.earliest(), TIMEOUT_S)
    for (topic, partition), exc in failed.items():
        log.warning("could not read the log start of %s[%d]: %s", topic, partition, exc)
    return starts


def group_losses(admin: AdminClient, bootstrap_servers: str, group_id: str, topics: list[str]) -> list[LostRange]:
    """What a consumer group would skip when it resumes on these topics: for a stage to look at
    as it starts (its consumer resets to the log start without a word). Empty if Kafka cannot tell."""
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_S).topics
        partitions = [TopicPartition(topic, p) for topic in topics if topic in metadata for p in metadata[topic].partitions]
        committed = committed_offsets(bootstrap_servers, group_id, partitions, TIMEOUT_S)
    except KafkaException as exc:
        log.warning("could not read the committed offsets of %s: %s", group_id, exc)
        return []
    return lost_ranges(committed, log_starts(admin, [key for key, offset in committed.items() if offset >= 0]))


class LossReporter:
    """Reports lost ranges found by one consumer; tenant_of names the tenant an event goes to."""

    def __init__(self, settings: Settings, consumer: str, tenant_of: Callable[[str], str] = lambda _topic: ""):
        self.settings = settings
        self.consumer = consumer
        self.tenant_of = tenant_of

    def report(self, ranges: list[LostRange]) -> None:
        """Blocks until the operator events are written (run it off the event loop)."""
        for lost in ranges:
            log.warning("%s lost %d records of %s[%d], offsets %d to %d: Kafka deleted them before they were "
                        "consumed", self.consumer, lost.count, lost.topic, lost.partition, lost.first_offset,
                        lost.last_offset)
            for listener in _listeners:
                listener(lost, self.consumer)
        if ranges:
            try:
                self._announce(ranges)
            except ServiceError as exc:  # the WARNING lines above stand; the event is not worth a restart
                log.error("the operator events of %d lost ranges were not published: %s", len(ranges), exc)

    def _announce(self, ranges: list[LostRange]) -> None:
        with EventPublisher(self.settings) as publisher:
            for lost in ranges:
                data = {**asdict(lost), "count": lost.count, "consumer": self.consumer}
                publisher.publish_fields(type=LOST_EVENT, source=self.consumer, tenant=self.tenant_of(lost.topic),
                                         ordering_key=f"{lost.topic}/{lost.partition}", data=json.dumps(data).encode())
