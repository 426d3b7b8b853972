"""The results sink: delivery attempts and routing decisions from Kafka into the results store.

Exactly once in the store, at least once from Kafka. Each batch is cut into one chunk per
topic partition; for each chunk the sink
  1. commits an *intent*: the chunk's start offset, with its end in the commit metadata,
  2. inserts the chunk with a deduplication token named after its offsets,
  3. commits the chunk's end.
A crash, a stop or a rebalance between 1 and 3 leaves the intent committed; the next reader of
that partition (this sink after a restart, or another member of the group) inserts exactly that
range again under the same token, and ClickHouse skips it in the table and in every rollup
fed by it. A failing insert is retried with backoff, without reading further, until it succeeds
or the sink is stopped: meanwhile the results wait in Kafka.

Attempts are counted once whether or not their dispatcher lived to record their outcome: the
sink holds each attempt's intent until its outcome comes, and writes it back as outcome
`unknown` when none came by its deadline (see open_attempts). The committed offset stays at the
oldest open intent, so the next reader learns them again (see intents).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.acked import AcknowledgedProducer, Outgoing
from pipeline.metrics.results import ResultsMetrics
from pipeline.results.chunks import Batch, Chunk, Intent, decode_or_skip
from pipeline.kafka.offsets import committed_metadata
from pipeline.results.intents import position_metadata, resumes_of
from pipeline.results.open_attempts import OpenAttempt, OpenAttempts
from pipeline.results.store import AsyncResultsStore
from pipeline.results.streams import streams_by_topic

logger = logging.getLogger(__name__)
OVERDUE_CHECK_S = 0.5  # how often open attempts are looked at for a missed deadline


@dataclass(frozen=True, kw_only=True)
class BatchPolicy:
    max_messages: int = 20_000
    # From the batch's first message: bounds how stale the store can be. Each insert costs
    # ClickHouse some 20 ms of CPU whatever its size (the rollup views double it), and a batch
    # makes one insert per partition, so fewer, larger batches leave the CPU to the deliveries.
    max_wait_s: float = 1.0
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


class _Reassignments(ConsumerRebalanceListener):
    """Tells the sink when its partitions change hands: what it read before may be read again."""

    def __init__(self, sink: ResultsSink):
        self.sink = sink

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.sink.reassigned()

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.sink.reassigned()


class ResultsSink:
    """Consumes the results and routing topics into the store until stop() is called."""

    def __init__(self, settings: Settings, store: AsyncResultsStore, *,
                 batching: BatchPolicy = BatchPolicy(), retry: RetryPolicy = RetryPolicy(),
                 metrics: ResultsMetrics | None = None):
        self._settings = settings
        self._metrics = metrics
        self._store = store
        self._batching = batching
        self._retry = retry
        self._streams = streams_by_topic(settings)
        self._stopping = asyncio.Event()
        # Bumped on every rebalance: positions go back to the committed offsets, so whatever
        # was read under an older generation is read again and must not be stored.
        self._generation = 0
        self._checked: set[TopicPartition] = set()  # partitions whose intents are known this generation
        self._intents: dict[TopicPartition, Intent] = {}
        # Per partition: the open attempts where its next chunk starts; and, while the records
        # before that start are read again to learn them, that start.
        self._ledgers: dict[TopicPartition, OpenAttempts] = {}
        self._relearning: dict[TopicPartition, int] = {}
        self._marked: set[str] = set()  # attempts written back as unknown by this sink, not yet read back
        self._next_overdue_check = 0.0
        self._markers: AcknowledgedProducer | None = None

    def stop(self) -> None:
        """Asks run() to return; a chunk not yet stored is not committed, so it is read again later."""
        self._stopping.set()

    def reassigned(self) -> None:
        self._generation += 1
        self._checked.clear()
        self._intents.clear()
        self._ledgers.clear()
        self._relearning.clear()
        self._marked.clear()

    async def run(self) -> None:
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.subscribe(list(self._streams), listener=_Reassignments(self))
            while not self._stopping.is_set():
                batch = await self._collect(consumer)
                # An incomplete batch (stopped while an interrupted chunk was being read again)
                # is dropped: stored, it would carry a different token than the first insert.
                if batch.chunks and batch.complete:
                    await self._store_batch(consumer, batch)
        finally:
            await consumer.stop()
            if self._markers is not None:
                try:
                    await asyncio.to_thread(self._markers.close)
                except ServiceError as exc:  # harmless: their intents stay open, and are written back again
                    logger.warning("unknown outcomes not written before stopping: %s", exc)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=results_group_id(self._settings),
            client_id="results-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Records of an aborted transaction never happened; without transactions this is a no-op.
            isolation_level="read_committed",
            # A crashed sink's partitions pass to its successor after this long (the broker's minimum).
            session_timeout_ms=6000,
            heartbeat_interval_ms=2000,
            # Results need not arrive one by one: fuller fetches spare the broker many small requests.
            fetch_min_bytes=256 * 1024,
            fetch_max_wait_ms=250,
        )

    def _decode(self, message: ConsumerRecord) -> dict[str, Any]:
        return self._streams[message.topic].decode(message.value)

    async def _collect(self, consumer: AIOKafkaConsumer) -> Batch:
        """Messages until the batch is full or max_wait_s has passed since its first message,
        and in any case until every interrupted chunk it holds is whole again."""
        batch = Batch(self._decode, self._generation, self._ledger)
        window_ends: float | None = None
        while not self._stopping.is_set():
            await self._close_overdue()
            if window_ends is not None and batch.complete and (
                    batch.messages >= self._batching.max_messages or time.monotonic() >= window_ends):
                break
            wait_s = self._batching.idle_poll_s if window_ends is None else window_ends - time.monotonic()
            # An interrupted chunk is read whole even past the batch size: it must match its first insert.
            room = self._batching.max_messages - batch.messages if batch.complete else self._batching.max_messages
            fetched = await consumer.getmany(timeout_ms=math.ceil(max(wait_s, 0.01) * 1000), max_records=max(room, 1))
            generation = self._generation
            if not await self._learn_intents(consumer, fetched):
                continue  # a rebalance during the lookup: these messages will be read again
            if batch.generation != generation:
                batch, window_ends = Batch(self._decode, generation, self._ledger), None
            if self._add(consumer, batch, fetched) and batch.complete:
                break  # a partition's next chunk starts here: it goes in the next batch
            if window_ends is None and batch.messages:
                window_ends = time.monotonic() + self._batching.max_wait_s
        return batch

    async def _learn_intents(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, Any]) -> bool:
        """Looks up the pending intents of newly assigned partitions; False if a rebalance came meanwhile."""
        if all(tp in self._checked for tp in fetched):
            return True
        generation = self._generation
        unchecked = [tp for tp in consumer.assignment() if tp not in self._checked]
        for delay_s in retry_delays(self._retry):
            try:
                resumes = resumes_of(await committed_metadata(consumer, unchecked))
                break
            except Exception as exc:  # the broker is away: nothing can be committed either, so wait
                logger.warning("reading committed offsets failed, retrying in %.1f s: %s", delay_s, exc)
            if await self._stop_requested_within(delay_s):
                return False
        if self._generation != generation:
            return False
        self._checked.update(unchecked)
        for tp, resume in resumes.items():
            self._relearning[tp] = resume.start
            if resume.intent is not None:
                self._intents[tp] = resume.intent
                logger.info("replaying the interrupted chunk %s[%d] %d..%d", tp.topic, tp.partition,
                            resume.intent.start, resume.intent.end)
        return True

    def _ledger(self, tp: TopicPartition) -> OpenAttempts:
        if tp not in self._ledgers:
            self._ledgers[tp] = OpenAttempts(self._settings.results_outcome_grace_s)
        return self._ledgers[tp]

    def _relearn(self, tp: TopicPartition, message: ConsumerRecord) -> bool:
        """True if the message is before where storing resumes: it only re-opens or closes intents."""
        start = self._relearning.get(tp)
        if start is None or message.offset >= start:
            self._relearning.pop(tp, None)
            return False
        record = decode_or_skip(self._decode, message)
        if record is not None:
            self._ledger(tp).relearn(record, message.offset, message.timestamp)
        if message.offset + 1 >= start:
            self._relearning.pop(tp, None)
        return True

    def _add(self, consumer: AIOKafkaConsumer, batch: Batch,
             fetched: dict[TopicPartition, list[ConsumerRecord]]) -> bool:
        """Adds the fetched messages; True if some were left for the next batch (and will be read again)."""
        left = False
        for tp, messages in fetched.items():
            for message in messages:
                if self._relearn(tp, message):
                    continue
                if tp in self._intents and tp not in batch.chunks:
                    batch.expect(tp, self._intents[tp])
                if not batch.add(message):
                    consumer.seek(tp, message.offset)  # it starts the partition's next chunk
                    left = True
                    break
        return left

    async def _store_batch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        if not await self._commit(consumer, batch, intent=True):
            if batch.generation == self._generation:
                for tp, chunk in batch.chunks.items():
                    consumer.seek(tp, chunk.start)  # nothing was inserted: read it all again
            return
        for tp, chunk in batch.chunks.items():
            if not await self._insert(tp, chunk):
                return  # stopped while the store failed: the intents stay for the next reader
            self._intents.pop(tp, None)
            self._ledgers[tp] = chunk.open
        await self._commit(consumer, batch, intent=False)

    async def _commit(self, consumer: AIOKafkaConsumer, batch: Batch, *, intent: bool) -> bool:
        if batch.generation != self._generation:
            return False  # the partitions were reassigned: their next reader follows the committed intents
        offsets = {tp: (self._ledger(tp).floor(chunk.start), position_metadata(chunk.start, chunk.end)) if intent
                   else (chunk.open.floor(chunk.end), position_metadata(chunk.end))
                   for tp, chunk in batch.chunks.items()}
        try:
            await consumer.commit(offsets)
            return True
        except KafkaError as exc:
            # Not fatal either way: without its intent a chunk is not inserted; without its end
            # commit it is inserted again under the same token, which ClickHouse skips.
            logger.warning("committing %s of %d messages failed: %s", "intents" if intent else "ends",
                           batch.messages, exc)
            return False

    async def _insert(self, tp: TopicPartition, chunk: Chunk) -> bool:
        """True once the chunk is stored; False if the sink was stopped before it could be."""
        if not chunk.rows:
            return True
        stream = self._streams[tp.topic]
        for delay_s in retry_delays(self._retry):
            try:
                await self._store.insert_rows(stream.table, stream.columns, chunk.rows, chunk.token(tp))
                if self._metrics is not None:
                    self._metrics.rows.labels(stream.table).inc(len(chunk.rows))
                return True
            except Exception as exc:  # each ClickHouse transport raises its own types; all are retried
                logger.warning("storing %d rows in %s failed, retrying in %.1f s: %s",
                               len(chunk.rows), stream.table, delay_s, exc)
            if await self._stop_requested_within(delay_s):
                return False
        raise AssertionError("retry_delays never ends")

    async def _close_overdue(self) -> None:
        """Writes back, as outcome unknown, the intents whose outcome is overdue (their dispatcher
        died); each is stored when read back, unless its outcome came first after all."""
        now = time.time()
        if now < self._next_overdue_check:
            return
        self._next_overdue_check = now + OVERDUE_CHECK_S
        still_open = {attempt_id for tp, ledger in self._ledgers.items() for attempt_id in ledger.opened}
        self._marked &= still_open
        overdue = [(tp, attempt) for tp, ledger in self._ledgers.items() if tp not in self._relearning
                   for attempt in ledger.overdue(now) if attempt.intent["attempt_id"] not in self._marked]
        if not overdue:
            return
        try:
            await self._marker_producer().send([_unknown_outcome(tp, attempt) for tp, attempt in overdue])
        except ServiceError as exc:  # tried again at the next check
            logger.warning("writing %d unknown outcomes failed: %s", len(overdue), exc)
            return
        self._marked.update(attempt.intent["attempt_id"] for _, attempt in overdue)
        logger.info("%d attempts had no outcome by their deadline (their dispatcher stopped during the "
                    "request): recorded as unknown", len(overdue))

    def _marker_producer(self) -> AcknowledgedProducer:
        if self._markers is None:
            self._markers = AcknowledgedProducer(self._settings)
        return self._markers

    async def _stop_requested_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True


def _unknown_outcome(tp: TopicPartition, attempt: OpenAttempt) -> Outgoing:
    """Into the intent's own partition, after it, where its outcome would have been."""
    record = attempt.closing_unknown()
    key, value = record["subscription_id"].encode(), codec("delivery_attempt").encode(record)
    return Outgoing(tp.topic, key, value, tp.partition)
