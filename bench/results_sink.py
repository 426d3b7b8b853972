"""`python -m bench.results_sink`: the results sink's rows per second, and the lag from an
attempt record reaching Kafka to its row being queryable through the query API.

Both run the real results service as its own process (embedded chdb in a temporary
directory) against the local broker, and read only through its HTTP query API, as the CLI
and the admin API do. `make bench` calls `run()` and prints its figures beside the others.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from bench.pipeline import stage_environment, wait_for
from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.devstack.kafka_broker import own_broker
from pipeline.devstack.ports import free_port
from pipeline.kafka.admin import delete_topics_with_prefix, ensure_core_topics
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.results import client
from pipeline.tokens import client_token
from pipeline.topics import TopicNames

ROWS = int(os.environ.get("BENCH_SINK_ROWS", "200000"))
LAG_SAMPLES = int(os.environ.get("BENCH_LAG_SAMPLES", "100"))
WARM_UP_ROWS = 1000
SUBSCRIPTIONS = 50


def attempt_record(subscription_id: str, n: int) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "attempt_id": uuid.uuid4().hex, "event_id": f"evt_{uuid.uuid4().hex}", "event_type": f"bench.type{n % 7}",
        "event_time": now.replace(microsecond=now.microsecond // 1000 * 1000), "subscription_id": subscription_id,
        "tenant": f"tenant{n % 5}", "attempt": 1 + n % 3, "endpoint_host": "bench.example.com", "started_at": now,
        "latency_ms": float(n % 250), "status_code": 200 if n % 10 else 503,
        "outcome": "success" if n % 10 else "http_error", "error": None if n % 10 else "HTTP 503",
        "request_bytes": 1024, "response_bytes": 2, "response_body": "ok",
    }


def produce(settings: Settings, records: list[dict[str, Any]], producer: Producer | None = None) -> None:
    """Onto the results topic, acknowledged by Kafka when this returns."""
    producer = producer or reliable_producer(settings)
    topic = TopicNames.from_settings(settings).results
    encode = codec("delivery_attempt").encode
    for record in records:
        producer.produce(topic, key=record["subscription_id"].encode(), value=encode(record))
        producer.poll(0)
    flush_or_raise(producer)


def stored(base_url: str, token: str) -> int:
    try:
        return client.count_attempts(base_url, token=token, timeout_s=5)
    except Exception:  # starting, or busy: asked again
        return -1


@contextmanager
def results_service(settings: Settings) -> Iterator[str]:
    """The results service as a process; yields its query API's base URL once it stores attempts."""
    process = subprocess.Popen([sys.executable, "-m", "pipeline.results"], env=stage_environment(settings),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{settings.results_port}"
    try:
        produce(settings, [attempt_record("warm-up", n) for n in range(WARM_UP_ROWS)])  # group join, first inserts
        token = client_token(settings)
        wait_for(lambda: stored(base_url, token) >= WARM_UP_ROWS, 120, "the results service to store the warm-up")
        yield base_url
    finally:
        process.terminate()
        process.wait(30)


def sink_rows_per_second(settings: Settings, base_url: str, rows: int = ROWS) -> float:
    """Attempts produced as fast as Kafka takes them; rows per second until the last one is stored."""
    records = [attempt_record(f"sub-{n % SUBSCRIPTIONS}", n) for n in range(rows)]
    token = client_token(settings)
    before = stored(base_url, token)
    started = time.perf_counter()
    produce(settings, records)
    wait_for(lambda: stored(base_url, token) >= before + rows, 600, f"{rows} attempts stored")
    return rows / (time.perf_counter() - started)


def attempt_to_queryable_lag_ms(settings: Settings, base_url: str, samples: int = LAG_SAMPLES) -> tuple[float, float]:
    """p50 and p99 of the time from one attempt acknowledged by Kafka to its row answered by the query API."""
    lags, token = [], client_token(settings)
    producer = reliable_producer(settings, **{"linger.ms": 0})  # one record at a time: sent at once
    for n in range(samples):
        subscription_id = f"lag-{uuid.uuid4().hex[:12]}"
        produce(settings, [attempt_record(subscription_id, n)], producer)
        sent = time.perf_counter()
        wait_for(lambda subscription=subscription_id: _visible(base_url, token, subscription), 60,
                 f"attempt {n} queryable")
        lags.append((time.perf_counter() - sent) * 1000)
    lags.sort()
    return lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]


def _visible(base_url: str, token: str, subscription_id: str) -> bool:
    query = {"subscription_id": subscription_id, "limit": "1"}
    return bool(client.fetch(base_url, "/v1/attempts", query, token=token)["attempts"])


def run(bootstrap_servers: str, rows: int = ROWS, samples: int = LAG_SAMPLES) -> dict[str, Any]:
    """Both figures, on fresh topics and a fresh store, with the broker at bootstrap_servers."""
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings().model_copy(update={
            "topic_prefix": f"bench{uuid.uuid4().hex[:6]}.", "data_dir": Path(data_dir),
            "kafka_bootstrap_servers": bootstrap_servers,
            "clickhouse_dsn": f"chdb://{Path(data_dir) / 'clickhouse'}", "results_port": free_port()})
        ensure_core_topics(settings)
        try:
            with results_service(settings) as base_url:
                rate = sink_rows_per_second(settings, base_url, rows)
                p50, p99 = attempt_to_queryable_lag_ms(settings, base_url, samples)
        finally:
            delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topic_prefix)
    return {"rows": rows, "rows_per_s": rate, "samples": samples, "lag_p50_ms": p50, "lag_p99_ms": p99}


def table_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures as (measure, value) rows, for this table or make bench's."""
    return [
        (f"results sink rows/s ({figures['rows']:,} attempts, embedded ClickHouse)", f"{figures['rows_per_s']:,.0f}"),
        (f"attempt to queryable p50 / p99 (ms), {figures['samples']} one at a time",
         f"{figures['lag_p50_ms']:,.0f} / {figures['lag_p99_ms']:,.0f}"),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as broker_dir, own_broker(Path(broker_dir)) as broker:
        figures = run(broker.bootstrap)
    table = Table("measure", "value", title="results sink (one machine, one run)")
    for measure, value in table_rows(figures):
        table.add_row(measure, value)
    Console().print(table)


if __name__ == "__main__":
    main()
