"""Where the sink stands in a partition, as committed to Kafka: insert intents and open attempts.

Insert intents: the sink commits each chunk's offset range before inserting it, then commits
its end. A committed range therefore marks a chunk that may or may not have reached ClickHouse:
whoever reads the partition next inserts exactly that range again, under the same
deduplication token, and ClickHouse keeps one copy.

Open attempts (see open_attempts): the committed offset itself is the oldest offset still to
be read again, which is the oldest open intent's when there is one; the metadata says where
storing resumes (`from`), so the records between are read only to learn the open intents.

    results-sink/v2 from=S end=E   chunk [S, E) may have been inserted: insert it again
    results-sink/v2 from=S         rows before S are stored
    results-sink/v1 end=E          (older sinks) chunk [committed, E) may have been inserted
    anything else                  rows before the committed offset are stored
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from pipeline.results.chunks import Intent

METADATA_V2 = re.compile(r"^results-sink/v2 from=(\d+)(?: end=(\d+))?$")
METADATA_V1 = re.compile(r"^results-sink/v1 end=(\d+)$")


@dataclass(frozen=True)
class Resume:
    """How a partition's next reader goes on from the committed offset."""

    start: int  # rows from here on are stored; records before it only re-open intents
    intent: Intent | None = None  # the interrupted chunk, which starts at `start`


def position_metadata(start: int, end: int | None = None) -> str:
    """The metadata of a commit: rows before `start` are stored; [start, end) is about to be."""
    return f"results-sink/v2 from={start}" + (f" end={end}" if end is not None else "")


def parse_resume(committed_offset: int, metadata: str | None) -> Resume | None:
    """How to go on from a committed offset; None when nothing was committed."""
    if committed_offset < 0:
        return None
    if match := METADATA_V2.match(metadata or ""):
        start = max(int(match.group(1)), committed_offset)
        end = int(match.group(2)) if match.group(2) else None
        return Resume(start, Intent(start, end) if end is not None and end > start else None)
    if (match := METADATA_V1.match(metadata or "")) and int(match.group(1)) > committed_offset:
        return Resume(committed_offset, Intent(committed_offset, int(match.group(1))))
    return Resume(committed_offset)


def resumes_of(committed: dict[TopicPartition, Any]) -> dict[TopicPartition, Resume]:
    """How each partition goes on, from committed offsets ({tp: OffsetAndMetadata})."""
    resumes = {}
    for tp, entry in committed.items():
        resume = parse_resume(entry.offset, entry.metadata)
        if resume is not None:
            resumes[tp] = resume
    return resumes
