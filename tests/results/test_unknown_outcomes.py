"""Attempts whose dispatcher died mid-request: the sink counts each request once, as `unknown`
when its outcome never comes, across its own crashes and restarts."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioPartition

from pipeline.codec import codec
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.kafka.offsets import committed_metadata
from pipeline.results.sink import BatchPolicy, ResultsSink, results_group_id
from pipeline.results.store import AsyncResultsStore
from pipeline.topics import TopicNames
from tests.results.test_sink_crashes import RecordingStore, SimulatedCrash

pytestmark = pytest.mark.integration

SMALL_BATCHES = BatchPolicy(max_messages=25, max_wait_s=0.02, idle_poll_s=0.1)
SUBSCRIPTION = "sub_chaos"  # every record is keyed by it, so all share one partition, as a subscription's do


def intent_of(record: dict) -> dict:
    """The intent the dispatcher announces before a request: the row stored if no outcome comes."""
    return record | {"outcome": "unknown", "status_code": None, "latency_ms": 0.0, "error": "no outcome (test)",
                     "intent": "open", "timeout_ms": 100}


def closed(record: dict, **changes) -> dict:
    return record | {"intent": "close"} | changes


def produce(settings, records: list[dict]) -> None:
    producer = reliable_producer(settings)
    for record in records:
        producer.produce(TopicNames.from_settings(settings).results, key=SUBSCRIPTION.encode(),
                         value=codec("delivery_attempt").encode(record))
    flush_or_raise(producer)


async def committed(settings) -> dict[int, tuple[int, str]]:
    """The sink group's commits: offset and metadata (read as the sink reads them: librdkafka garbles
    metadata now and then, see pipeline.kafka.offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=results_group_id(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        topic = TopicNames.from_settings(settings).results
        answer = await committed_metadata(consumer, [AioPartition(topic, n) for n in range(settings.results_partitions)])
        return {tp.partition: (entry.offset, entry.metadata) for tp, entry in answer.items() if entry.offset >= 0}
    finally:
        await consumer.stop()


async def rows(store: AsyncResultsStore) -> list[tuple[str, str]]:
    answer = await store.call(store.store.client.query,
                              "SELECT attempt_id, outcome FROM delivery_attempts ORDER BY attempt_id")
    return [tuple(row) for row in answer.result_rows]


async def run_until(sink: ResultsSink, condition, eventually, what: str) -> None:
    task = asyncio.create_task(sink.run())
    try:
        await eventually(condition, what)
    finally:
        sink.stop()
        await asyncio.wait_for(task, timeout=15)


async def test_an_intent_without_outcome_is_stored_once_as_unknown_across_sink_crashes_and_restarts(
        kafka_settings, store, attempt, eventually):
    waiting = kafka_settings.model_copy(update={"results_outcome_grace_s": 3600.0})  # nothing is overdue yet
    hasty = kafka_settings.model_copy(update={"results_outcome_grace_s": 0.01})
    died = attempt(SUBSCRIPTION, attempt_id="a_died")  # its dispatcher was killed during the request
    lived = attempt(SUBSCRIPTION, attempt_id="b_lived")
    parked = attempt(SUBSCRIPTION, attempt_id="c_parked", outcome="dead_lettered", status_code=None)
    produce(kafka_settings, [intent_of(died), intent_of(lived), closed(lived), parked])
    async_store = AsyncResultsStore(store)

    # A sink crashes between inserting the first chunk and committing it.
    with pytest.raises(SimulatedCrash):
        await asyncio.wait_for(ResultsSink(waiting, RecordingStore(async_store, crash_after=1),
                                           batching=SMALL_BATCHES).run(), timeout=30)
    assert await rows(async_store) == [("b_lived", "success"), ("c_parked", "dead_lettered")]

    # The next inserts that chunk again (ClickHouse skips it) and commits the open intent's offset.
    async def committed_past_the_chunk_but_back_at_the_open_intent() -> bool:
        return list((await committed(kafka_settings)).values()) == [(0, "results-sink/v2 from=4")]
    await run_until(ResultsSink(waiting, async_store, batching=SMALL_BATCHES),
                    committed_past_the_chunk_but_back_at_the_open_intent, eventually, "the intent's offset committed")
    assert await rows(async_store) == [("b_lived", "success"), ("c_parked", "dead_lettered")]

    # A sink started later reads from the open intent again, stores nothing twice, and records it unknown.
    async def stored_unknown() -> bool:
        return ("a_died", "unknown") in await rows(async_store)
    sink = ResultsSink(hasty, async_store, batching=SMALL_BATCHES)
    task = asyncio.create_task(sink.run())
    try:
        await eventually(stored_unknown, "the unknown outcome")
        # The dispatcher's outcome, arriving after all, and an unknown written twice: neither counts again.
        produce(kafka_settings, [closed(died, outcome="success", status_code=200), closed(intent_of(died))])

        async def everything_read() -> bool:
            read = list((await committed(kafka_settings)).values())
            return read == [(7, "results-sink/v2 from=7")]
        await eventually(everything_read, "every record read and committed")
    finally:
        sink.stop()
        await asyncio.wait_for(task, timeout=15)

    assert await rows(async_store) == [("a_died", "unknown"), ("b_lived", "success"), ("c_parked", "dead_lettered")]
    (stats,) = await async_store.stats()
    assert (stats["attempts"], stats["delivered"], stats["dead_lettered"]) == (2, 1, 1)
