"""The query server over a real socket, through the synchronous client and the `stats` CLI command."""

from __future__ import annotations

import asyncio
import math
from functools import partial
from datetime import datetime, timedelta

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from pipeline.cli import output
from pipeline.cli.stats import register, stats_table
from pipeline.errors import ServiceError
from pipeline.results import client
from pipeline.results.query_api import bound_port, json_safe, start_query_server
from pipeline.results.store import AsyncResultsStore, ResultsStore


@pytest.fixture
async def server_url(store, attempt, tokens):
    """A query server on a free port over a store holding 3 attempts of sub_a and 1 of sub_b."""
    store.insert_attempts(
        [attempt("sub_a", latency_ms=10.0), attempt("sub_a", latency_ms=20.0, seconds_later=1.5)]
        + [attempt("sub_a", outcome="http_error", status_code=500, latency_ms=30.0)]
        + [attempt("sub_b", outcome="timeout", status_code=None, latency_ms=15000.0)]
    )
    async_store = AsyncResultsStore(store)
    runner = await start_query_server(async_store, "127.0.0.1", 0, tokens=tokens)
    yield f"http://127.0.0.1:{bound_port(runner)}"
    await runner.cleanup()
    async_store.close()  # closing twice is harmless: the store fixture closes the client again


async def test_healthz(server_url):
    assert await asyncio.to_thread(client.is_healthy, server_url) is True


async def test_stats_rows_are_json_with_iso_times(server_url, base_time, admin_token):
    rows = await asyncio.to_thread(partial(client.fetch_stats, server_url, token=admin_token))

    assert [row["subscription_id"] for row in rows] == ["sub_a", "sub_b"]
    sub_a = rows[0]
    assert (sub_a["attempts"], sub_a["delivered"], sub_a["failed"]) == (3, 2, 1)
    assert sub_a["p50_ms"] == pytest.approx(20.0)
    assert 20.0 < sub_a["p99_ms"] <= 30.0
    last_attempt_at = datetime.fromisoformat(sub_a["last_attempt_at"])
    assert last_attempt_at == base_time + timedelta(seconds=1.5)


async def test_stats_of_one_subscription(server_url, admin_token):
    rows = await asyncio.to_thread(partial(client.fetch_stats, server_url, "sub_b", token=admin_token))

    assert [(row["subscription_id"], row["failed"]) for row in rows] == [("sub_b", 1)]


async def test_counts_with_filters(server_url, admin_token):
    async def count(**filters) -> int:
        return await asyncio.to_thread(partial(client.count_attempts, server_url, token=admin_token, **filters))

    assert await count() == 4
    assert await count(subscription_id="sub_a") == 3
    assert await count(outcome="http_error") == 1
    assert await count(subscription_id="sub_b", outcome="success") == 0


async def test_a_failing_query_is_a_503_with_its_reason(chdb_dsn, tokens, admin_token):
    never_created = AsyncResultsStore(ResultsStore(chdb_dsn, "database_that_was_never_created"))
    runner = await start_query_server(never_created, "127.0.0.1", 0, tokens=tokens)
    try:
        with pytest.raises(ServiceError, match="503") as failure:
            await asyncio.to_thread(partial(client.count_attempts, f"http://127.0.0.1:{bound_port(runner)}",
                                            token=admin_token))
    finally:
        await runner.cleanup()
        never_created.close()

    assert "database_that_was_never_created" in str(failure.value)


def test_client_says_clearly_when_the_service_is_not_running(unused_port, admin_token):
    with pytest.raises(ServiceError, match="results service is not running"):
        client.fetch_stats(f"http://127.0.0.1:{unused_port}", token=admin_token)
    assert client.is_healthy(f"http://127.0.0.1:{unused_port}") is False


def test_json_safe_values():
    assert json_safe(datetime(2026, 1, 2, 3, 4, 5, 6)) == "2026-01-02T03:04:05.000006+00:00"
    assert json_safe(math.nan) is None
    assert json_safe(math.inf) is None
    assert json_safe(1.5) == 1.5


def _stats_cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _group() -> None:
        """Keeps `stats` a subcommand, as it is in the real CLI with its other commands."""

    return app


async def test_stats_command_prints_a_row_per_subscription(server_url, admin_token, monkeypatch):
    monkeypatch.setattr(output.console, "width", 200)  # a table; narrower terminals get a block per row
    result = await asyncio.to_thread(CliRunner().invoke, _stats_cli(), ["stats", "--results-url", server_url],
                                     env={"PIPELINE_API_TOKEN": admin_token})

    assert result.exit_code == 0, result.output
    cells = {row[0]: row[1:] for row in _table_rows(result.output)}
    assert cells["sub_a"][:5] == ["2", "1", "0", "3", "20.0"]  # delivered, failed, unknown, attempts, p50 ms
    assert cells["sub_b"][:6] == ["0", "1", "0", "1", "15000.0", "15000.0"]


async def test_stats_command_for_one_subscription(server_url, admin_token):
    args = ["stats", "--results-url", server_url, "--subscription", "sub_b"]
    result = await asyncio.to_thread(CliRunner().invoke, _stats_cli(), args, env={"PIPELINE_API_TOKEN": admin_token})

    assert result.exit_code == 0, result.output
    assert "sub_b" in result.output and "sub_a" not in result.output


def test_stats_table_shows_utc_seconds_and_dashes_for_missing_latency():
    row = {"subscription_id": "sub_x", "delivered": 1234567, "failed": 0, "attempts": 1234567}
    row |= {"p50_ms": None, "p99_ms": 12.345, "last_attempt_at": "2026-03-14T16:09:28.9+01:00"}
    console = Console(width=200, record=True)

    console.print(stats_table([row]))

    [cells] = _table_rows(console.export_text())
    assert cells == ["sub_x", "1234567", "0", "0", "1234567", "-", "12.3", "2026-03-14 15:09:28Z"]  # no unknown: 0


def _table_rows(output: str) -> list[list[str]]:
    """The stripped cells of each table line that names a subscription."""
    lines = [line.split("│")[1:-1] for line in output.splitlines() if line.startswith("│")]
    return [[cell.strip() for cell in line] for line in lines if line[0].strip().startswith("sub_")]


def test_stats_command_fails_clearly_without_the_service(unused_port, admin_token):
    args = ["stats", "--results-url", f"http://127.0.0.1:{unused_port}"]
    result = CliRunner().invoke(_stats_cli(), args, env={"PIPELINE_API_TOKEN": admin_token})

    assert result.exit_code == 1
    assert "not running" in result.output
