"""A stand-in for the endpoint consumer's Kafka client: records what the dispatcher asks of it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from pipeline.dispatcher.records import PartitionId


@dataclass
class FakeMessage:
    topic_: str
    partition_: int
    offset_: int
    key_: bytes | None = None

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes:
        return b""

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


@dataclass
class FakeRawConsumer:
    committed_offsets: dict[PartitionId, tuple[int, str]] = field(default_factory=dict)
    assigned: set[PartitionId] = field(default_factory=set)
    paused: set[PartitionId] = field(default_factory=set)  # kept through an unassign, as librdkafka does
    commits: list[dict[PartitionId, tuple[int, str]]] = field(default_factory=list)
    assigned_at: dict[PartitionId, int] = field(default_factory=dict)  # the offset each was last assigned at
    calls: list[str] = field(default_factory=list)  # the assigning, pausing and resuming calls, in order

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        """As librdkafka, refuses the whole call if any of them is assigned already."""
        self.calls.append("incremental_assign")
        places = {PartitionId(tp.topic, tp.partition): tp.offset for tp in partitions}
        if self.assigned & places.keys():
            raise KafkaException(KafkaError(KafkaError._CONFLICT, f"{self.assigned & places.keys()} already assigned"))
        self.assigned.update(places)
        self.assigned_at.update(places)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        """As librdkafka, refuses the whole call if any of them is not assigned."""
        self.calls.append("incremental_unassign")
        places = {PartitionId(tp.topic, tp.partition) for tp in partitions}
        if places - self.assigned:
            raise KafkaException(KafkaError(KafkaError._INVALID_ARG, f"{places - self.assigned} not assigned"))
        self.assigned -= places

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        answered = []
        for tp in partitions:
            offset, metadata = self.committed_offsets.get(PartitionId(tp.topic, tp.partition), (-1001, ""))
            answered.append(TopicPartition(tp.topic, tp.partition, offset, metadata=metadata))
        return answered

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append({PartitionId(tp.topic, tp.partition): (tp.offset, tp.metadata or "") for tp in offsets})

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("pause")
        for tp in partitions:
            partition = PartitionId(tp.topic, tp.partition)
            assert partition in self.assigned, f"pausing {partition}, which is not assigned"
            self.paused.add(partition)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("resume")
        for tp in partitions:
            partition = PartitionId(tp.topic, tp.partition)
            assert partition in self.assigned, f"resuming {partition}, which is not assigned"
            self.paused.discard(partition)


class FakeThreadedConsumer:
    def __init__(self) -> None:
        self.raw = FakeRawConsumer()
        self.waiting: list[Any] = []  # what the next take() answers
        self.held: set[str] = set()  # names of calls that wait for go_on, as behind a poll
        self.go_on = asyncio.Event()
        self.retired: list[FakeRawConsumer] = []  # replaced by renew()

    async def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        if method.__name__ in self.held:
            await self.go_on.wait()
        return method(*args, **kwargs)

    async def renew(self) -> None:
        """A new stand-in with nothing assigned; what was committed stays, as it does in Kafka."""
        self.retired.append(self.raw)
        self.raw = FakeRawConsumer(committed_offsets=self.raw.committed_offsets, commits=self.raw.commits)

    async def take(self, max_messages: int, timeout_s: float) -> list[Any]:
        taken, self.waiting = self.waiting, []
        return taken
