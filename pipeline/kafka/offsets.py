"""Offset queries that ride out a partition's first moments.

A newly created partition can answer NOT_LEADER for a little while even after metadata
names its leader; librdkafka does not retry offset queries, so we do.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipeline.errors import ServiceError

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
