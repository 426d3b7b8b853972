"""Fixtures of the results tests: embedded ClickHouse, fresh topics, and delivery attempt records."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from pipeline.devstack.ports import free_port
from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.kafka.admin import admin_client, broker_answers, core_topics, ensure_topics
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.results.query_api import bound_port, start_query_server
from pipeline.results.sink import BatchPolicy, ResultsSink, results_group_id
from pipeline.results.store import AsyncResultsStore, ResultsStore
from pipeline.topics import TopicNames
from tests.polling import wait_until as wait_until_sync
from tests.results.mix import known_decisions, known_mix

TOKENS = {"adm_results": "*", "tok_acme": "acme"}
ADMIN_TOKEN = "adm_results"

# Recent, so rows are within the store's retention (expired rows are dropped as they are
# inserted); hour-aligned, so which minute each attempt falls in is the same on every run.
BASE_TIME = datetime.now(timezone.utc).replace(minute=9, second=26, microsecond=535897) - timedelta(hours=2)


@pytest.fixture(scope="session")
def chdb_dsn(clickhouse_server: str | None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The ClickHouse of tests/conftest.py (CLICKHOUSE_DSN, else a container where Docker answers),
    else one chdb directory for the session: a process can have only one chdb path open at a time."""
    return clickhouse_server or f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def settings(chdb_dsn: str, kafka_bootstrap: str) -> Settings:
    """Fresh topics and a fresh database per test, so tests never see each other's attempts.

    kafka_bootstrap (tests/conftest.py) starts the local broker for the session if none runs.
    """
    return fresh_settings(chdb_dsn, kafka_bootstrap)


def fresh_settings(chdb_dsn: str, kafka_bootstrap: str) -> Settings:
    unique = uuid.uuid4().hex[:12]
    return Settings(
        api_tokens=SecretStr(json.dumps(TOKENS)),  # the results service asks for them, as the admin API does
        topic_prefix=f"t{unique}.",
        clickhouse_dsn=chdb_dsn,
        clickhouse_database=f"test_{unique}",
        kafka_bootstrap_servers=kafka_bootstrap,
        allowed_networks=["127.0.0.0/8"],  # the dispatcher's guard stays on; tests allow their local endpoints
        allow_http=True,
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[ResultsStore]:
    results_store = ResultsStore(settings.resolved_clickhouse_dsn, settings.clickhouse_database)
    results_store.create_schema()
    yield results_store
    results_store.close()


@pytest.fixture
def kafka_settings(settings: Settings) -> Iterator[Settings]:
    """Settings whose core topics exist on the real broker for the test, and are deleted after it."""
    yield from topics_for(settings)


@pytest.fixture(scope="module")
def module_kafka_settings(chdb_dsn: str, kafka_bootstrap: str) -> Iterator[Settings]:
    """The same, shared by the tests of a module (for data stored once and queried by each)."""
    yield from topics_for(fresh_settings(chdb_dsn, kafka_bootstrap))


def topics_for(settings: Settings) -> Iterator[Settings]:
    servers = settings.kafka_bootstrap_servers
    if not broker_answers(servers):
        pytest.fail(f"no Kafka broker at {servers}: start one with `python -m pipeline.devstack kafka start`")
    admin = admin_client(servers)
    topics = core_topics(settings)
    ensure_topics(admin, topics)
    yield settings
    # A development broker would otherwise collect four topics per test run, forever.
    for future in admin.delete_topics([topic.name for topic in topics], operation_timeout=30).values():
        future.result()


def make_attempt(
    subscription_id: str = "sub_a",
    *,
    outcome: str = "success",
    latency_ms: float = 12.5,
    seconds_later: float = 0.0,
    status_code: int | None = 200,
    **overrides: Any,
) -> dict[str, Any]:
    """A DeliveryAttempt record as the codec decodes it (timezone-aware datetimes)."""
    started_at = BASE_TIME + timedelta(seconds=seconds_later)
    record = {
        "attempt_id": f"att_{uuid.uuid4().hex}",
        "event_id": f"evt_{uuid.uuid4().hex}",
        "event_type": "user.created",
        "event_time": started_at.replace(microsecond=started_at.microsecond // 1000 * 1000),
        "subscription_id": subscription_id,
        "tenant": "acme",
        "attempt": 1,
        "endpoint_host": "hooks.example.com",
        "started_at": started_at,
        "latency_ms": latency_ms,
        "status_code": status_code,
        "outcome": outcome,
        "error": None if outcome == "success" else f"{outcome} (test)",
        "request_bytes": 512,
        "response_bytes": 2,
        "response_body": "ok",
    }
    return record | overrides


def produce(settings: Settings, values: list[bytes], topic: str | None = None) -> None:
    """Values onto the results topic (or another), keyed so they spread over its partitions."""
    producer = reliable_producer(settings)
    topic = topic or TopicNames.from_settings(settings).results
    for index, value in enumerate(values):
        producer.produce(topic, key=str(index).encode(), value=value)
    flush_or_raise(producer)


def encode_attempts(records: list[dict[str, Any]]) -> list[bytes]:
    return [codec("delivery_attempt").encode(record) for record in records]


def produce_decisions(settings: Settings, decisions: list[dict[str, Any]]) -> None:
    """Routing decisions onto the routing topic, as the router writes them."""
    values = [codec("routing_decision").encode(decision) for decision in decisions]
    produce(settings, values, TopicNames.from_settings(settings).routing)


def committed_offsets(settings: Settings, topic: str | None = None) -> dict[int, int]:
    """The sink group's committed offset per results (or other) partition (0 where nothing is committed)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": results_group_id(settings)})
    try:
        topic = topic or TopicNames.from_settings(settings).results
        partitions = [TopicPartition(topic, number) for number in range(settings.results_partitions)]
        return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10)}
    finally:
        consumer.close()


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0) -> None:
    """Polls an async condition until it holds, without blocking the loop; fails at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


# The known mix (tests/results/mix.py), stored once per module that asks for it.


@pytest.fixture(scope="module")
def ingested(module_kafka_settings, chdb_dsn, attempt, kafka, base_time):
    """The mix on the topics, stored once for the module by a sink in small batches.

    Yields (records, decisions, store).
    """
    settings = module_kafka_settings
    records, decisions = known_mix(attempt), known_decisions(base_time)
    kafka.produce(settings, kafka.encode(records))
    kafka.produce_decisions(settings, decisions)
    store = ResultsStore(chdb_dsn, settings.clickhouse_database)
    store.create_schema()
    asyncio.run(_sink_until_committed(settings, store, kafka, len(records), len(decisions)))
    yield records, decisions, store
    store.close()


async def _sink_until_committed(settings, store, kafka, attempts: int, decisions: int) -> None:
    async_store = AsyncResultsStore(store)
    sink = ResultsSink(settings, async_store, batching=BatchPolicy(max_messages=7, max_wait_s=0.05, idle_poll_s=0.1))
    sink_task = asyncio.create_task(sink.run())
    routing_topic = TopicNames.from_settings(settings).routing

    def committed() -> tuple[int, int]:
        return sum(kafka.committed(settings).values()), sum(kafka.committed(settings, routing_topic).values())

    try:
        await asyncio.to_thread(wait_until_sync, lambda: committed() == (attempts, decisions), timeout_s=30,
                                interval_s=0.05, what="commits of every attempt and decision")
    finally:
        sink.stop()
        await asyncio.wait_for(sink_task, timeout=15)
        async_store.release()  # the store itself stays open for the queries


@pytest.fixture
async def stored_mix(ingested, base_time):
    """A query server over the stored mix; yields (records, decisions, time window, base URL)."""
    records, decisions, store = ingested
    async_store = AsyncResultsStore(store)
    runner = await start_query_server(async_store, "127.0.0.1", 0, tokens=TOKENS)
    window = {"from": (base_time - timedelta(minutes=10)).isoformat(),
              "to": (base_time + timedelta(minutes=10)).isoformat()}
    yield records, decisions, window, f"http://127.0.0.1:{bound_port(runner)}"
    await runner.cleanup()
    async_store.release()


# Helpers handed out as fixtures, so test modules need not import this conftest.


@pytest.fixture(scope="session")
def tokens() -> dict[str, str]:
    """The API tokens of every results service here: ADMIN_TOKEN is an admin's, tok_acme tenant acme's."""
    return TOKENS


@pytest.fixture(scope="session")
def admin_token() -> str:
    return ADMIN_TOKEN


@pytest.fixture(scope="session")
def attempt() -> Callable[..., dict[str, Any]]:
    return make_attempt


@pytest.fixture(scope="session")
def base_time() -> datetime:
    """When attempt() records start, unless told seconds_later."""
    return BASE_TIME


@pytest.fixture(scope="session")
def kafka() -> SimpleNamespace:
    return SimpleNamespace(produce=produce, encode=encode_attempts, committed=committed_offsets,
                           produce_decisions=produce_decisions)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    return wait_until


@pytest.fixture
def unused_port() -> int:
    return free_port()
