"""Batches of consumed messages, cut into one chunk per topic partition.

A chunk is a run of consecutive offsets of one partition and becomes one insert, under an
insert deduplication token named after its offsets. After a crash the sink must insert an
interrupted chunk again with exactly the same offsets, or ClickHouse could not recognise it:
such a chunk is *expected* (its range is known from the intent committed before the insert)
and the batch takes exactly that range from its partition, no more and no less.

Each chunk carries the open attempts of its partition (open_attempts) from where it starts:
they decide which records become rows, and become the partition's once the chunk is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from pipeline.errors import CodecError, InvalidInput
from pipeline.results.open_attempts import DEFAULT_GRACE_S, OpenAttempts

logger = logging.getLogger(__name__)

Decoder = Callable[[ConsumerRecord], dict[str, Any]]
Ledgers = Callable[[TopicPartition], OpenAttempts]  # a partition's open attempts where its next chunk starts


@dataclass(frozen=True)
class Intent:
    """A chunk about to be inserted, as committed to Kafka before its insert: offsets [start, end)."""

    start: int
    end: int


@dataclass
class Chunk:
    start: int
    end: int  # the offset after the last message taken
    first_timestamp: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    expected_end: int | None = None  # set when the chunk must be exactly an interrupted one
    open: OpenAttempts = field(default_factory=lambda: OpenAttempts(DEFAULT_GRACE_S))  # as of `end`

    @property
    def complete(self) -> bool:
        return self.expected_end is None or self.end >= self.expected_end

    def token(self, tp: TopicPartition) -> str:
        # The first message's timestamp tells a chunk from one at the same offsets of a topic
        # deleted and created again, which ClickHouse would otherwise take for a replay.
        return f"{tp.topic}/{tp.partition}/{self.start}-{self.end}/{self.first_timestamp}"


class Batch:
    """Consumed messages not yet stored: their rows per partition, and where each chunk ends."""

    def __init__(self, decode: Decoder, generation: int = 0, ledgers: Ledgers | None = None):
        self.decode = decode
        self.generation = generation  # of the sink's assignment when the batch began
        self.ledgers = ledgers or (lambda tp: OpenAttempts(DEFAULT_GRACE_S))
        self.chunks: dict[TopicPartition, Chunk] = {}
        self.messages = 0

    def expect(self, tp: TopicPartition, intent: Intent) -> None:
        """The next chunk of tp must be exactly the interrupted one."""
        self.chunks[tp] = Chunk(start=intent.start, end=intent.start, expected_end=intent.end,
                                open=self.ledgers(tp).copy())

    def add(self, message: ConsumerRecord) -> bool:
        """Takes the message; False if it belongs after this batch's chunk of its partition."""
        tp = TopicPartition(message.topic, message.partition)
        chunk = self.chunks.get(tp)
        if chunk is None:
            chunk = self.chunks[tp] = Chunk(start=message.offset, end=message.offset, open=self.ledgers(tp).copy())
        elif chunk.expected_end is not None and message.offset >= chunk.expected_end:
            chunk.end = max(chunk.end, chunk.expected_end)  # the rest of the range is gone (retention)
            return False
        if chunk.first_timestamp is None:
            chunk.first_timestamp = message.timestamp
        self.messages += 1
        # Undecodable messages still advance the chunk, so they are not read again.
        chunk.end = message.offset + 1
        row = decode_or_skip(self.decode, message)
        if row is not None:
            row = chunk.open.take(row, message.offset, message.timestamp)
        if row is not None:
            chunk.rows.append(row)
        return True

    @property
    def complete(self) -> bool:
        """False while an expected chunk still lacks messages of its range."""
        return all(chunk.complete for chunk in self.chunks.values())

    @property
    def rows(self) -> int:
        return sum(len(chunk.rows) for chunk in self.chunks.values())


def decode_or_skip(decode: Decoder, message: ConsumerRecord) -> dict[str, Any] | None:
    """The message's row, or None (logged) if it cannot be decoded or stored."""
    try:
        return decode(message)
    except (CodecError, InvalidInput) as exc:
        # Skipped, not retried: the same bytes would fail the same way forever.
        logger.warning("skipping message %s[%d]@%d: %s", message.topic, message.partition, message.offset, exc)
        return None
