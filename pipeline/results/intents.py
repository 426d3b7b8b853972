"""Insert intents: a chunk's offset range, committed to Kafka before the chunk is inserted.

The sink commits each chunk's start offset with its end in the commit's metadata, inserts,
then commits the end. A committed offset that still carries an end therefore marks a chunk
that may or may not have reached ClickHouse: whoever reads the partition next inserts
exactly that range again, under the same deduplication token, and ClickHouse keeps one copy.
"""

from __future__ import annotations

import re

from aiokafka import TopicPartition
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as ConfluentPartition

from pipeline.results.chunks import Intent

METADATA_PREFIX = "results-sink/v1 end="
METADATA = re.compile(rf"^{re.escape(METADATA_PREFIX)}(\d+)$")


def intent_metadata(end: int) -> str:
    return f"{METADATA_PREFIX}{end}"


def parse_intent(committed_offset: int, metadata: str | None) -> Intent | None:
    """The interrupted chunk a committed offset marks, or None if it marks a finished one."""
    match = METADATA.match(metadata or "")
    if committed_offset < 0 or match is None or int(match.group(1)) <= committed_offset:
        return None
    return Intent(start=committed_offset, end=int(match.group(1)))


def committed_intents(bootstrap_servers: str, group_id: str, partitions: list[TopicPartition],
                      timeout_s: float = 10.0) -> dict[TopicPartition, Intent]:
    """The group's pending intents on these partitions (blocking: call it from a thread).

    confluent-kafka, because aiokafka's public committed() drops the commit metadata. A
    consumer that never subscribes only reads the group's offsets; it does not join the group.
    """
    if not partitions:
        return {}
    reader = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False})
    try:
        committed = reader.committed([ConfluentPartition(tp.topic, tp.partition) for tp in partitions],
                                     timeout=timeout_s)
    finally:
        reader.close()
    intents = {}
    for entry in committed:
        intent = parse_intent(entry.offset, entry.metadata)
        if intent is not None:
            intents[TopicPartition(entry.topic, entry.partition)] = intent
    return intents
