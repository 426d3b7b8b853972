"""The whole results service: topic to store to query server, then a clean stop."""

from __future__ import annotations

import asyncio
from functools import partial
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import ServiceError
from pipeline.results import client
from pipeline.results.service import run
from pipeline.results.store import redacted_dsn


@pytest.mark.integration
async def test_service_stores_what_the_topic_holds_and_answers_queries(
    kafka_settings, unused_port, attempt, kafka, eventually, admin_token
):
    settings = kafka_settings.model_copy(update={"results_port": unused_port})
    base_url = f"http://127.0.0.1:{unused_port}"
    records = [attempt("sub_a") for _ in range(7)] + [attempt("sub_b", outcome="timeout", status_code=None)]
    await asyncio.to_thread(kafka.produce, settings, kafka.encode(records))
    stop = asyncio.Event()
    service = asyncio.create_task(run(settings, stop))

    async def all_counted() -> bool:
        return await asyncio.to_thread(_count_or_none, base_url, admin_token) == 8

    try:
        await eventually(all_counted, "the service to count 8 attempts")
        rows = await asyncio.to_thread(partial(client.fetch_stats, base_url, token=admin_token))
    finally:
        stop.set()
        await asyncio.wait_for(service, timeout=15)

    summary = [(row["subscription_id"], row["delivered"], row["failed"]) for row in rows]
    assert summary == [("sub_a", 7, 0), ("sub_b", 0, 1)]
    assert sum((await asyncio.to_thread(kafka.committed, settings)).values()) == 8
    assert not await asyncio.to_thread(client.is_healthy, base_url)  # the server stopped with the service


def _count_or_none(base_url: str, token: str) -> int | None:
    """None while the service is still starting and not yet listening."""
    try:
        return client.count_attempts(base_url, token=token)
    except ServiceError:
        return None


def test_logged_dsns_carry_no_password():
    assert redacted_dsn("http://user:secret@ch.internal:8123/db") == "http://ch.internal:8123/db"
    assert redacted_dsn("chdb:///var/lib/pipeline/clickhouse") == "chdb:///var/lib/pipeline/clickhouse"


@pytest.mark.integration
def test_the_process_stops_cleanly_on_sigterm_and_a_second_one_cannot_share_its_store(
    kafka_settings, unused_port, tmp_path
):
    env = os.environ | {
        "PIPELINE_DATA_DIR": str(tmp_path),
        "PIPELINE_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "PIPELINE_RESULTS_PORT": str(unused_port),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
    }
    log_path = tmp_path / "first.log"  # a file, not a pipe nobody drains while the test waits
    with log_path.open("w") as log:
        first = subprocess.Popen([sys.executable, "-m", "pipeline.results"], env=env, stderr=log)
    try:
        _wait_healthy(f"http://127.0.0.1:{unused_port}", first, log_path)
        second = subprocess.run(
            [sys.executable, "-m", "pipeline.results"],
            env=env | {"PIPELINE_RESULTS_PORT": "0"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    finally:
        first.kill()  # no-op once it has exited; ends it if an assertion above failed

    assert second.returncode == 1
    assert "only one process may open its directory" in second.stderr
    first_log = log_path.read_text()
    assert first.returncode == 0, first_log
    assert "results service stopped" in first_log


def _wait_healthy(base_url: str, process: subprocess.Popen, log_path: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not client.is_healthy(base_url):
        if process.poll() is not None:
            pytest.fail(f"the results service exited with {process.returncode}: {log_path.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"the results service was not healthy within {timeout_s:.0f} s")
        time.sleep(0.1)
