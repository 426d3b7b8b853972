"""Insert intents: a chunk's offset range, committed to Kafka before the chunk is inserted.

The sink commits each chunk's start offset with its end in the commit's metadata, inserts,
then commits the end. A committed offset that still carries an end therefore marks a chunk
that may or may not have reached ClickHouse: whoever reads the partition next inserts
exactly that range again, under the same deduplication token, and ClickHouse keeps one copy.
"""

from __future__ import annotations

import re
from typing import Any

from aiokafka import TopicPartition

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


def intents_of(committed: dict[TopicPartition, Any]) -> dict[TopicPartition, Intent]:
    """The pending intents among committed offsets ({tp: OffsetAndMetadata})."""
    intents = {}
    for tp, entry in committed.items():
        intent = parse_intent(entry.offset, entry.metadata)
        if intent is not None:
            intents[tp] = intent
    return intents
