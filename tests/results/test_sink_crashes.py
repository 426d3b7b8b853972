"""Crashes of the sink between insert and commit, in-process and as a SIGKILLed service: counts stay exact."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections import Counter

import httpx
import pytest

from pipeline.errors import ServiceError
from pipeline.results import client
from pipeline.results.sink import BatchPolicy, ResultsSink
from pipeline.results.store import AsyncResultsStore
from pipeline.topics import TopicNames
from tests.conftest import stage_env
from tests.polling import wait_until
from tests.results.mix import expected_summary, known_decisions

pytestmark = pytest.mark.integration

SMALL_BATCHES = BatchPolicy(max_messages=25, max_wait_s=0.02, idle_poll_s=0.1)


class SimulatedCrash(BaseException):
    """A BaseException, so the sink's retry of failed inserts does not catch it: the process 'dies'."""


class RecordingStore:
    """Passes inserts to the real store and remembers their tokens; can crash right after the Nth attempts insert."""

    def __init__(self, real: AsyncResultsStore, crash_after: int | None = None):
        self.real = real
        self.crash_after = crash_after
        self.tokens: list[str] = []
        self.attempt_inserts = 0

    async def insert_rows(self, table: str, columns: tuple[str, ...], records: list[dict],
                          token: str | None = None) -> None:
        await self.real.insert_rows(table, columns, records, token)
        self.tokens.append(token)
        self.attempt_inserts += table == "delivery_attempts"
        if self.crash_after is not None and self.attempt_inserts >= self.crash_after:
            raise SimulatedCrash(f"crashed after inserting {token}, before committing it")


async def test_a_crash_between_insert_and_commit_stores_nothing_twice(kafka_settings, store, attempt, kafka, eventually,
                                                                      base_time):
    records = [attempt(f"sub_{n % 3}", latency_ms=float(n % 17), seconds_later=n) for n in range(300)]
    decisions = known_decisions(base_time)
    await asyncio.to_thread(kafka.produce, kafka_settings, kafka.encode(records))
    await asyncio.to_thread(kafka.produce_decisions, kafka_settings, decisions)
    async_store = AsyncResultsStore(store)
    crashing = RecordingStore(async_store, crash_after=3)

    first = ResultsSink(kafka_settings, crashing, batching=SMALL_BATCHES)
    with pytest.raises(SimulatedCrash):
        await asyncio.wait_for(first.run(), timeout=30)
    committed_at_crash = sum((await asyncio.to_thread(kafka.committed, kafka_settings)).values())
    assert await async_store.count_attempts() > committed_at_crash  # stored, not committed: it will be read again

    recording = RecordingStore(async_store)
    second = ResultsSink(kafka_settings, recording, batching=SMALL_BATCHES)
    task = asyncio.create_task(second.run())
    try:
        await eventually(lambda: _committed_is(kafka, kafka_settings, len(records)), "commits of every attempt")
        await eventually(lambda: _decisions_committed(kafka, kafka_settings, len(decisions)),
                         "commits of every decision")
    finally:
        second.stop()
        await asyncio.wait_for(task, timeout=15)

    assert await async_store.count_attempts() == len(records)
    await _assert_rollups_exact(async_store, records)
    assert crashing.tokens[-1] in recording.tokens  # the interrupted chunk was inserted again, as the same chunk
    routed = await async_store.call(store.client.query, "SELECT sum(decisions) FROM routing_per_minute")
    assert routed.result_rows[0][0] == len(decisions)


async def _assert_rollups_exact(async_store: AsyncResultsStore, records: list[dict]) -> None:
    expected = expected_summary(records, lambda r: r["subscription_id"])
    rows = {row["subscription_id"]: row for row in await async_store.stats()}
    assert {name: row["attempts"] for name, row in rows.items()} == {n: e["attempts"] for n, e in expected.items()}
    raw = await async_store.call(async_store.store.client.query,
                                 "SELECT count(), uniqExact(attempt_id) FROM delivery_attempts")
    assert raw.result_rows[0] == (len(records), len(records))


async def _committed_is(kafka, settings, expected: int) -> bool:
    return sum((await asyncio.to_thread(kafka.committed, settings)).values()) == expected


async def _decisions_committed(kafka, settings, expected: int) -> bool:
    topic = TopicNames.from_settings(settings).routing
    return sum((await asyncio.to_thread(kafka.committed, settings, topic)).values()) == expected


def test_a_sigkilled_results_service_restarts_with_exact_counts(kafka_settings, attempt, kafka, tmp_path, unused_port,
                                                                admin_token):
    """The service is killed while attempts keep arriving, then started again: every attempt counted once."""
    settings = kafka_settings.model_copy(update={
        "clickhouse_dsn": f"chdb://{tmp_path / 'clickhouse'}", "results_port": unused_port, "data_dir": tmp_path})
    base_url = f"http://127.0.0.1:{unused_port}"
    bursts = [[attempt(f"sub_{n % 4}", seconds_later=n) for n in range(150)] for _ in range(20)]
    producer = threading.Thread(target=_produce_slowly, args=(kafka, settings, bursts))
    log_path = tmp_path / "results.log"

    total = sum(len(burst) for burst in bursts)
    processes = [_start_service(settings, log_path)]
    try:
        producer.start()
        wait_until(lambda: (_count(base_url, admin_token) or 0) > 0, timeout_s=60, interval_s=0.05,
                   what="the first stored attempts")
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(10)
        producer.join(60)
        processes.append(_start_service(settings, log_path))
        wait_until(lambda: _count(base_url, admin_token) == total and _committed(kafka, settings) == total, timeout_s=90,
                   what=f"{total} attempts stored and committed after the restart")
        rows = client.fetch_stats(base_url, token=admin_token)
    except AssertionError:
        print(log_path.read_text()[-4000:])
        raise
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)

    assert processes[0].returncode == -signal.SIGKILL
    expected = Counter(record["subscription_id"] for burst in bursts for record in burst)
    assert {row["subscription_id"]: row["attempts"] for row in rows} == dict(expected)  # the rollups, too
    assert sum(row["delivered"] for row in rows) == total


def _produce_slowly(kafka, settings, bursts: list[list[dict]]) -> None:
    for burst in bursts:
        kafka.produce(settings, kafka.encode(burst))
        threading.Event().wait(0.05)  # spreads the traffic over the kill; not a wait for a condition


def _start_service(settings, log_path) -> subprocess.Popen:
    with log_path.open("a") as log:
        return subprocess.Popen([sys.executable, "-m", "pipeline.results"], env=stage_env(settings),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _count(base_url: str, token: str) -> int | None:
    try:
        return client.count_attempts(base_url, token=token, timeout_s=2)
    except (ServiceError, httpx.HTTPError):
        return None


def _committed(kafka, settings) -> int:
    return sum(kafka.committed(settings).values())
