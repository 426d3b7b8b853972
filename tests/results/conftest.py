"""Fixtures of the results tests: embedded ClickHouse, fresh topics, and delivery attempt records."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.kafka.admin import admin_client, broker_answers, core_topics, ensure_topics
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.results.sink import results_group_id
from pipeline.results.store import ResultsStore
from pipeline.topics import TopicNames

BASE_TIME = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One chdb directory for the session: a process can have only one chdb path open at a time."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def settings(chdb_dsn: str) -> Settings:
    """Fresh topics and a fresh database per test, so tests never see each other's attempts."""
    unique = uuid.uuid4().hex[:12]
    return Settings(
        topic_prefix=f"t{unique}.",
        clickhouse_dsn=chdb_dsn,
        clickhouse_database=f"test_{unique}",
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
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


def produce(settings: Settings, values: list[bytes]) -> None:
    """Values onto the results topic, keyed so they spread over its partitions."""
    producer = reliable_producer(settings)
    topic = TopicNames.from_settings(settings).results
    for index, value in enumerate(values):
        producer.produce(topic, key=str(index).encode(), value=value)
    flush_or_raise(producer)


def encode_attempts(records: list[dict[str, Any]]) -> list[bytes]:
    return [codec("delivery_attempt").encode(record) for record in records]


def committed_offsets(settings: Settings) -> dict[int, int]:
    """The sink group's committed offset per results partition (0 where nothing is committed)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": results_group_id(settings)})
    try:
        topic = TopicNames.from_settings(settings).results
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Helpers handed out as fixtures, so test modules need not import this conftest.


@pytest.fixture
def attempt() -> Callable[..., dict[str, Any]]:
    return make_attempt


@pytest.fixture
def kafka() -> SimpleNamespace:
    return SimpleNamespace(produce=produce, encode=encode_attempts, committed=committed_offsets)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    return wait_until


@pytest.fixture
def unused_port() -> int:
    return free_port()
