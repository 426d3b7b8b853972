"""Offset queries that ride out a partition's first moments.

A newly created partition can answer NOT_LEADER for a little while even after metadata
names its leader; librdkafka does not retry offset queries, so we do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from pipeline.errors import ServiceError
from pipeline.kafka.clients import LIBRDKAFKA_LOG

if TYPE_CHECKING:  # only the asyncio stages import aiokafka; the CLI reads offsets without it
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as AioPartition

RETRIABLE = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
             KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT}
LIST_OFFSETS_CHUNK = 250


def watermarks(consumer: Consumer, partition: TopicPartition, timeout_s: float = 15.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=max(0.5, deadline - time.monotonic()))
        except KafkaException as exc:
            if exc.args[0].code() not in RETRIABLE or time.monotonic() > deadline:
                raise ServiceError(f"cannot read the offsets of {partition.topic}[{partition.partition}]: {exc}") from exc
            time.sleep(0.1)



Place = tuple[str, int]  # a partition: its topic and number


def list_offsets(admin: AdminClient, partitions: Iterable[Place], spec: OffsetSpec,
                 timeout_s: float) -> tuple[dict[Place, int], dict[Place, KafkaException]]:
    """Each partition's offset by `spec` (OffsetSpec.latest(): its end; earliest(): its log
    start); apart, the partitions Kafka could not answer for, with why. What a missing answer
    means is the caller's to say.

    Asked LIST_OFFSETS_CHUNK partitions a call, one call after the other: librdkafka groups a
    call's partitions by leader in time quadratic in their number (a dispatcher's sweep of 5,000
    parked partitions took 0.24 s of CPU in one call, 0.10 in chunks). Chunks asked all at once
    made a dispatcher's new endpoints wait several times longer for their first event."""
    places = list(dict.fromkeys(partitions))
    found: dict[Place, int] = {}
    failed: dict[Place, KafkaException] = {}
    for start in range(0, len(places), LIST_OFFSETS_CHUNK):
        asked = {TopicPartition(topic, partition): spec for topic, partition in places[start:start + LIST_OFFSETS_CHUNK]}
        for tp, future in admin.list_offsets(asked, request_timeout=timeout_s).items():
            try:
                found[tp.topic, tp.partition] = future.result().offset
            except KafkaException as exc:
                failed[tp.topic, tp.partition] = exc
    return found, failed


def end_offsets(admin: AdminClient, partitions: list[Place], timeout_s: float) -> dict[Place, int]:
    """Every partition's end offset, asking again for those a new partition's first moments
    leave unanswered; raises ServiceError if one stays unanswered for timeout_s."""
    deadline = time.monotonic() + timeout_s
    found: dict[Place, int] = {}
    while True:
        ends, failed = list_offsets(admin, [p for p in partitions if p not in found], OffsetSpec.latest(),
                                    max(1.0, deadline - time.monotonic()))
        found.update(ends)
        if not failed:
            return found
        (topic, partition), exc = next(iter(failed.items()))
        if exc.args[0].code() not in RETRIABLE or time.monotonic() > deadline:
            raise ServiceError(f"cannot read the end offset of {topic}[{partition}]: {exc}") from exc
        time.sleep(0.1)


def committed_offsets(bootstrap_servers: str, group_id: str, partitions: list[TopicPartition],
                      timeout_s: float) -> dict[Place, int]:
    """A group's committed offsets (OFFSET_INVALID, below zero, where it committed none); raises
    KafkaException if Kafka does not answer within the timeout.

    Read through a consumer of that group that never joins it, not through an admin client: when
    the group's coordinator moves (a broker restarting), librdkafka handles an admin client's
    OffsetFetch answer by dereferencing the consumer group an admin client does not have, and
    the whole process dies of SIGSEGV (librdkafka issue 5315)."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False,
                         "logger": LIBRDKAFKA_LOG})
    try:
        answer = consumer.committed(partitions, timeout=timeout_s)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): tp.offset for tp in answer if tp.error is None}


async def committed_metadata(consumer: AIOKafkaConsumer, partitions: list[AioPartition],
                             timeout_s: float = 10.0) -> dict[AioPartition, Any]:
    """A group's committed offsets on these partitions with their metadata ({tp: OffsetAndMetadata}).

    Through the consumer's coordinator: aiokafka's public committed() drops the metadata, and
    confluent-kafka reads the metadata past its end (librdkafka issue 4649), which makes garbage
    of it now and then."""
    if not partitions:
        return {}
    # aiokafka retries until the coordinator answers: bound it, so a caller can stop meanwhile.
    return await asyncio.wait_for(consumer._coordinator.fetch_committed_offsets(list(partitions)), timeout_s)
