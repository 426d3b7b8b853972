"""The results sink against the real broker and embedded chdb."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from pipeline.codec import codec
from pipeline.results.chunks import Batch
from pipeline.results.sink import BatchPolicy, ResultsSink, RetryPolicy, retry_delays
from pipeline.results.store import AsyncResultsStore
from pipeline.results.streams import ATTEMPTS

# Small batches and short waits, so a test sees several batches and retries quickly.
SMALL_BATCHES = BatchPolicy(max_messages=40, max_wait_s=0.05, idle_poll_s=0.1)
QUICK_RETRIES = RetryPolicy(first_delay_s=0.02, max_delay_s=0.1)


class FlakyStore:
    """Fails every insert until heal() is called, then passes inserts to the real store."""

    def __init__(self, real: AsyncResultsStore):
        self.real = real
        self.failed_inserts = 0
        self.healthy = False

    def heal(self) -> None:
        self.healthy = True

    async def insert_rows(self, table: str, columns: tuple[str, ...], records: list[dict],
                          token: str | None = None) -> None:
        if not self.healthy:
            self.failed_inserts += 1
            raise ConnectionError("ClickHouse is unreachable (test)")
        await self.real.insert_rows(table, columns, records, token)


@pytest.fixture
def async_store(store):
    wrapped = AsyncResultsStore(store)
    yield wrapped
    wrapped.close()  # closing twice is harmless: the store fixture closes the client again


def start_sink(settings, store) -> tuple[ResultsSink, asyncio.Task]:
    sink = ResultsSink(settings, store, batching=SMALL_BATCHES, retry=QUICK_RETRIES)
    return sink, asyncio.create_task(sink.run())


async def stop_sink(sink: ResultsSink, task: asyncio.Task) -> None:
    sink.stop()
    await asyncio.wait_for(task, timeout=15)


def test_retry_delays_double_up_to_the_maximum():
    delays = list(itertools.islice(retry_delays(RetryPolicy(first_delay_s=0.5, max_delay_s=3.0)), 6))

    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_a_batch_keeps_decodable_rows_and_advances_past_every_message(attempt):
    good = codec("delivery_attempt").encode(attempt("sub_x"))
    batch = Batch(lambda message: ATTEMPTS.decode(message.value))

    for offset, value in enumerate([good, b"garbage", None, good]):
        batch.add(_message(partition=offset % 2, offset=offset, value=value))

    assert [row["subscription_id"] for chunk in batch.chunks.values() for row in chunk.rows] == ["sub_x", "sub_x"]
    assert batch.messages == 4
    ranges = {tp: (chunk.start, chunk.end) for tp, chunk in batch.chunks.items()}
    assert ranges == {TopicPartition("results", 0): (0, 3), TopicPartition("results", 1): (1, 4)}


def _message(*, partition: int, offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        topic="results", partition=partition, offset=offset, timestamp=0, timestamp_type=0, key=None, value=value,
        checksum=None, serialized_key_size=0, serialized_value_size=len(value or b""), headers=[],
    )


@pytest.mark.integration
async def test_sink_stores_every_attempt_skips_garbage_and_commits_after_storing(
    kafka_settings, async_store, attempt, kafka, eventually
):
    records = [attempt(f"sub_{n % 3}", latency_ms=float(n)) for n in range(250)]
    unstorable = codec("delivery_attempt").encode(attempt(status_code=70_000))
    garbage = [b"not avro", b"", unstorable]
    await asyncio.to_thread(kafka.produce, kafka_settings, kafka.encode(records) + garbage)

    sink, task = start_sink(kafka_settings, async_store)
    try:
        await eventually(lambda: _count_is(async_store, 250), "250 stored attempts")
        await eventually(lambda: _committed_total_is(kafka, kafka_settings, 253), "commits of all 253 messages")
    finally:
        await stop_sink(sink, task)

    assert await async_store.count_attempts(subscription_id="sub_0") == 84
    assert sorted(row["attempts"] for row in await async_store.stats()) == [83, 83, 84]
    assert await async_store.count_attempts() == 250  # nothing stored twice, garbage not stored


@pytest.mark.integration
async def test_a_failing_store_holds_back_commits_until_the_batch_is_stored(
    kafka_settings, async_store, attempt, kafka, eventually
):
    await asyncio.to_thread(kafka.produce, kafka_settings, kafka.encode([attempt() for _ in range(30)]))
    flaky = FlakyStore(async_store)

    sink, task = start_sink(kafka_settings, flaky)
    try:
        await eventually(lambda: _true(flaky.failed_inserts >= 3), "three failed inserts")
        assert sum((await asyncio.to_thread(kafka.committed, kafka_settings)).values()) == 0
        flaky.heal()
        await eventually(lambda: _count_is(async_store, 30), "30 stored attempts after the store healed")
        await eventually(lambda: _committed_total_is(kafka, kafka_settings, 30), "commits after storing")
    finally:
        await stop_sink(sink, task)

    assert sum(row["attempts"] for row in await async_store.stats()) == 30  # the rollups, once each


@pytest.mark.integration
async def test_stopping_while_the_store_fails_commits_nothing(kafka_settings, async_store, attempt, kafka, eventually):
    await asyncio.to_thread(kafka.produce, kafka_settings, kafka.encode([attempt() for _ in range(10)]))
    flaky = FlakyStore(async_store)
    sink, task = start_sink(kafka_settings, flaky)
    await eventually(lambda: _true(flaky.failed_inserts >= 1), "a failed insert")

    await stop_sink(sink, task)

    assert task.done() and task.exception() is None
    assert sum((await asyncio.to_thread(kafka.committed, kafka_settings)).values()) == 0
    assert await async_store.count_attempts() == 0


@pytest.mark.integration
async def test_a_restarted_sink_resumes_after_its_last_commit(kafka_settings, async_store, attempt, kafka, eventually):
    await asyncio.to_thread(kafka.produce, kafka_settings, kafka.encode([attempt() for _ in range(20)]))
    first, task = start_sink(kafka_settings, async_store)
    await eventually(lambda: _committed_total_is(kafka, kafka_settings, 20), "the first sink's commits")
    await stop_sink(first, task)

    await asyncio.to_thread(kafka.produce, kafka_settings, kafka.encode([attempt("sub_late") for _ in range(5)]))
    second, task = start_sink(kafka_settings, async_store)
    try:
        await eventually(lambda: _committed_total_is(kafka, kafka_settings, 25), "the second sink's commits")
    finally:
        await stop_sink(second, task)

    assert await async_store.count_attempts() == 25  # the first 20 were not read again
    assert await async_store.count_attempts(subscription_id="sub_late") == 5


async def _count_is(store: AsyncResultsStore, expected: int) -> bool:
    return await store.count_attempts() == expected


async def _committed_total_is(kafka, settings, expected: int) -> bool:
    return sum((await asyncio.to_thread(kafka.committed, settings)).values()) == expected


async def _true(value: bool) -> bool:
    return value
