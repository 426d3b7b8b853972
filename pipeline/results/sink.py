"""The results sink: delivery attempts from the results topic into the results store.

At least once: offsets are committed only after the batch that holds them is stored, and a
failed insert is retried, with backoff, until it succeeds or the sink is stopped. A crash or a
rebalance between insert and commit means those attempts are read, and stored, once more.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.errors import CodecError, InvalidInput
from pipeline.results.store import AsyncResultsStore, check_storable
from pipeline.topics import TopicNames

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BatchPolicy:
    max_messages: int = 5_000
    max_wait_s: float = 0.2  # from the batch's first message: bounds how stale the store can be
    idle_poll_s: float = 0.5  # how long an idle sink waits for messages before it checks for stop


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0


def retry_delays(policy: RetryPolicy) -> Iterator[float]:
    """Endless delays, doubling from the first up to the maximum."""
    delay = policy.first_delay_s
    while True:
        yield delay
        delay = min(delay * 2, policy.max_delay_s)


def results_group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}results-sink"


def decode_attempt(message: ConsumerRecord) -> dict[str, Any] | None:
    """The message's delivery attempt, or None (logged) if it cannot be decoded or stored."""
    try:
        if not message.value:
            raise CodecError("empty message")
        return check_storable(codec("delivery_attempt").decode(message.value))
    except (CodecError, InvalidInput) as exc:
        # Skipped, not retried: the same bytes would fail the same way forever.
        logger.warning(
            "skipping message %s[%d]@%d: %s", message.topic, message.partition, message.offset, exc
        )
        return None


@dataclass
class Batch:
    """Consumed messages not yet stored: their rows, and the offsets to commit once stored."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    messages: int = 0

    def add(self, message: ConsumerRecord) -> None:
        self.messages += 1
        # Undecodable messages still advance the offset, so they are not read again.
        self.next_offsets[TopicPartition(message.topic, message.partition)] = message.offset + 1
        row = decode_attempt(message)
        if row is not None:
            self.rows.append(row)


class ResultsSink:
    """Consumes the results topic into the store until stop() is called."""

    def __init__(
        self,
        settings: Settings,
        store: AsyncResultsStore,
        *,
        batching: BatchPolicy = BatchPolicy(),
        retry: RetryPolicy = RetryPolicy(),
    ):
        self._settings = settings
        self._store = store
        self._batching = batching
        self._retry = retry
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Asks run() to return; a batch not yet stored is not committed, so it is read again later."""
        self._stopping.set()

    async def run(self) -> None:
        consumer = self._consumer()
        await consumer.start()
        try:
            while not self._stopping.is_set():
                batch = await self._collect(consumer)
                if batch.messages and await self._store_batch(batch):
                    await self._commit(consumer, batch)
        finally:
            await consumer.stop()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            TopicNames.from_settings(self._settings).results,
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=results_group_id(self._settings),
            client_id="results-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Attempts of an aborted transaction never happened; without transactions this is a no-op.
            isolation_level="read_committed",
        )

    async def _collect(self, consumer: AIOKafkaConsumer) -> Batch:
        """Messages until the batch is full or max_wait_s has passed since its first message."""
        batch = Batch()
        window_ends: float | None = None
        while batch.messages < self._batching.max_messages and not self._stopping.is_set():
            wait_s = self._batching.idle_poll_s if window_ends is None else window_ends - time.monotonic()
            if wait_s <= 0:
                break
            fetched = await consumer.getmany(
                timeout_ms=math.ceil(wait_s * 1000), max_records=self._batching.max_messages - batch.messages
            )
            for messages in fetched.values():
                for message in messages:
                    batch.add(message)
            if window_ends is None and batch.messages:
                window_ends = time.monotonic() + self._batching.max_wait_s
        return batch

    async def _store_batch(self, batch: Batch) -> bool:
        """True once the batch is stored; False if the sink was stopped before it could be."""
        if not batch.rows:
            return True
        for delay_s in retry_delays(self._retry):
            try:
                await self._store.insert_attempts(batch.rows)
                return True
            except Exception as exc:  # each ClickHouse transport raises its own types; all are retried
                logger.warning("storing %d attempts failed, retrying in %.1f s: %s", len(batch.rows), delay_s, exc)
            if await self._stop_requested_within(delay_s):
                return False
        raise AssertionError("retry_delays never ends")

    async def _stop_requested_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def _commit(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        # A partition taken away by a rebalance cannot be committed here; its new owner reads
        # it again from the last commit, which stores those attempts twice but loses none.
        assigned = consumer.assignment()
        offsets = {tp: offset for tp, offset in batch.next_offsets.items() if tp in assigned}
        try:
            if offsets:
                await consumer.commit(offsets)
        except KafkaError as exc:
            # Not fatal: the next batch's commit covers these offsets too.
            logger.warning(
                "commit after storing %d attempts failed; a restart now would store them again: %s", len(batch.rows), exc
            )
