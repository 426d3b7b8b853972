"""Offset queries that ride out a partition's first moments.

A newly created partition can answer NOT_LEADER for a little while even after metadata
names its leader; librdkafka does not retry offset queries, so we do.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipeline.errors import ServiceError

if TYPE_CHECKING:  # only the asyncio stages import aiokafka; the CLI reads offsets without it
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as AioPartition

RETRIABLE = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
             KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT}


def watermarks(consumer: Consumer, partition: TopicPartition, timeout_s: float = 15.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=max(0.5, deadline - time.monotonic()))
        except KafkaException as exc:
            if exc.args[0].code() not in RETRIABLE or time.monotonic() > deadline:
                raise ServiceError(f"cannot read the offsets of {partition.topic}[{partition.partition}]: {exc}") from exc
            time.sleep(0.1)



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
