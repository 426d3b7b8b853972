"""Services for the whole suite, found in this order:
KAFKA_BOOTSTRAP_SERVERS / CLICKHOUSE_DSN when set; testcontainers when a Docker engine
answers; otherwise the project's local Kafka broker and embedded ClickHouse.
"""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from pipeline.devstack.ports import free_port
from pipeline.config import PROJECT_ROOT, Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.kafka.admin import delete_topics_with_prefix, ensure_core_topics

ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@cache
def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    import subprocess

    return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    if _docker_answers():
        from testcontainers.community.kafka import KafkaContainer  # only needed where Docker runs

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    broker = KafkaBroker(Settings())
    started = broker.start()
    yield broker.bootstrap
    if started:
        gc.collect()  # tests' leftover clients close now, not reconnecting to a stopped broker at exit
        broker.stop()


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[str | None]:
    """A ClickHouse server's DSN (CLICKHOUSE_DSN, else a container where Docker answers), or None
    for embedded chdb, whose directory each test (or the results tests' session) chooses."""
    if os.environ.get("CLICKHOUSE_DSN"):
        yield os.environ["CLICKHOUSE_DSN"]
        return
    if _docker_answers():
        from testcontainers.community.clickhouse import ClickHouseContainer  # only needed where Docker runs

        with ClickHouseContainer() as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(8123)
            yield f"http://{container.username}:{container.password}@{host}:{port}"
        return
    yield None


@pytest.fixture
def settings(kafka_bootstrap: str, clickhouse_server: str | None, tmp_path: Path) -> Iterator[Settings]:
    """Fresh topics (a uuid prefix), free ports and a private data directory for one test."""
    yield from fresh_settings(kafka_bootstrap, tmp_path, clickhouse_server)


@pytest.fixture(scope="module")
def module_settings(kafka_bootstrap: str, clickhouse_server: str | None,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The same, shared by the tests of one module (for a pipeline started once per module)."""
    yield from fresh_settings(kafka_bootstrap, tmp_path_factory.mktemp("module"), clickhouse_server)


def fresh_settings(kafka_bootstrap: str, tmp_path: Path, clickhouse_server: str | None = None) -> Iterator[Settings]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    dsn = clickhouse_server or f"chdb://{tmp_path / 'clickhouse'}"
    test_settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=prefix,
        data_dir=tmp_path / "data",
        clickhouse_dsn=dsn,
        clickhouse_database=f"test_{uuid.uuid4().hex[:8]}",
        results_port=free_port(),
        api_port=free_port(),
        router_metrics_port=free_port(),
        dispatcher_metrics_port=free_port(),
        dispatcher_shards=8,
        events_partitions=4,
        retry_schedule_s=(0.0, 0.2, 0.5, 1.0),
        allowed_networks=["127.0.0.0/8"],  # the guard stays on; tests allow their local receivers
        allow_http=True,
    )
    ensure_core_topics(test_settings)
    yield test_settings
    delete_topics_with_prefix(kafka_bootstrap, prefix)


def results_auth(settings: Settings) -> dict[str, str]:
    """The header a test presents to a results service run with these settings (the stages find
    the same admin token in the data directory, or in PIPELINE_API_TOKENS)."""
    from pipeline.tokens import client_token

    return {"Authorization": f"Bearer {client_token(settings)}"}


def stage_env(settings: Settings) -> dict[str, str]:
    """The environment that points a stage process at one test's settings."""
    env = os.environ.copy()
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "CLICKHOUSE_DSN": settings.resolved_clickhouse_dsn,
        "PIPELINE_TOPIC_PREFIX": settings.topic_prefix,
        "PIPELINE_DATA_DIR": str(settings.data_dir),
        "PIPELINE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "PIPELINE_RESULTS_PORT": str(settings.results_port),
        "PIPELINE_API_PORT": str(settings.api_port),
        "PIPELINE_ROUTER_METRICS_PORT": str(settings.router_metrics_port),
        "PIPELINE_DISPATCHER_METRICS_PORT": str(settings.dispatcher_metrics_port),
        "PIPELINE_BACKLOG_METRICS_INTERVAL_S": str(settings.backlog_metrics_interval_s),
        "PIPELINE_ENDPOINT_PARTITIONS": str(settings.endpoint_partitions),
        "PIPELINE_DISPATCHER_SHARDS": str(settings.dispatcher_shards),
        "PIPELINE_DISPATCHER_SESSION_TIMEOUT_MS": str(settings.dispatcher_session_timeout_ms),
        "PIPELINE_DISPATCHER_PARK_IDLE_S": str(settings.dispatcher_park_idle_s),
        "PIPELINE_DISPATCHER_PARKED_SWEEP_S": str(settings.dispatcher_parked_sweep_s),
        "PIPELINE_DISPATCHER_RENEW_AFTER_TOPICS": str(settings.dispatcher_renew_after_topics),
        "PIPELINE_RETRY_SCHEDULE_S": "[" + ",".join(str(d) for d in settings.retry_schedule_s) + "]",
        "PIPELINE_MAX_RETRY_AFTER_S": str(settings.max_retry_after_s),
        "PIPELINE_ALLOWED_NETWORKS": ",".join(settings.allowed_networks),
        "PIPELINE_ALLOW_HTTP": str(settings.allow_http).lower(),
        "PIPELINE_AUTO_DISABLE_AFTER_S": str(settings.auto_disable_after_s),
        "PIPELINE_AUTO_DISABLE_MIN_FAILURES": str(settings.auto_disable_min_failures),
        "PIPELINE_RESULTS_OUTCOME_GRACE_S": str(settings.results_outcome_grace_s),
    })
    if settings.api_tokens:  # otherwise every stage finds the admin token made once in the data directory
        env["PIPELINE_API_TOKENS"] = settings.api_tokens.get_secret_value()
    return env
