"""`pipeline stats` and its subcommands against a query server over the known mix."""

from __future__ import annotations

import asyncio

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli import output, stats
from pipeline.cli.stats import register
from tests.results.mix import expected_summary, is_attempt

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def cli_token(monkeypatch, admin_token):
    """The token the CLI presents to the results service, as a user sets it."""
    monkeypatch.setenv("PIPELINE_API_TOKEN", admin_token)


@pytest.fixture
def wide_console(monkeypatch):
    monkeypatch.setattr(output.console, "width", 220)  # one table row per line, nothing folded


def stats_cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _group() -> None:
        """Keeps `stats` a subcommand, as it is in the real CLI."""

    return app


async def run(*args: str) -> tuple[int, list[list[str]], str]:
    """Exit code, the cells of every table row, and the whole output."""
    result = await asyncio.to_thread(CliRunner().invoke, stats_cli(), ["stats", *args])
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.output.splitlines()
            if line.startswith("│")]
    return result.exit_code, rows, result.output


async def test_traffic_lists_busy_steps_per_key(stored_mix, wide_console):
    records, _, window, base_url = stored_mix

    code, rows, text = await run("traffic", "--results-url", base_url, "--since", window["from"], "--until",
                                 window["to"], "--step", "600", "--by", "tenant")

    assert code == 0, text
    per_tenant = {}
    for row in rows:
        per_tenant[row[1]] = per_tenant.get(row[1], 0) + int(row[2])
    assert per_tenant == {tenant: sum(r["tenant"] == tenant and is_attempt(r) for r in records)
                          for tenant in ("acme", "globex")}


async def test_summary_per_subscription(stored_mix, wide_console):
    records, _, window, base_url = stored_mix
    expected = expected_summary(records, lambda r: r["subscription_id"])

    code, rows, text = await run("summary", "--results-url", base_url, "--since", window["from"],
                                 "--until", window["to"])

    assert code == 0, text
    got = {row[0]: row for row in rows}
    for name, want in expected.items():
        assert got[name][1:5] == [str(want[n]) for n in ("attempts", "succeeded", "failed", "unknown")]
        assert got[name][6:8] == [str(want["succeeded_on_retry"]), str(want["dead_lettered"])]
        assert got[name][8] == f"{want['p50_ms']:.1f}"


async def test_last_attempts_and_errors_and_routing(stored_mix, wide_console):
    records, decisions, window, base_url = stored_mix

    _, last, _ = await run("last", "--results-url", base_url, "--subscription", "sub_5xx", "--limit", "3")
    _, errors, error_text = await run("errors", "--results-url", base_url, "--since", window["from"])
    _, routing, _ = await run("routing", "--results-url", base_url, "--since", window["from"])

    assert [row[5] for row in last] == ["success", "http_error", "http_error"]
    assert ["http_error", "404", "HTTP 404", "8", "4"] == errors[0][:5]  # the commonest reason first
    assert "Error log" in error_text
    assert {(row[0], row[1]): row[2] for row in routing} == {
        ("routed", "-"): "10", ("dropped", "no_match"): "3", ("dropped", "paused"): "2",
        ("dropped", "filtered"): "1", ("dropped", "invalid"): "1"}


async def test_last_takes_the_subscription_as_an_argument(stored_mix, wide_console):
    *_, base_url = stored_mix

    code, by_argument, text = await run("last", "sub_5xx", "--results-url", base_url, "--limit", "3")
    _, by_option, _ = await run("last", "--subscription", "sub_5xx", "--results-url", base_url, "--limit", "3")
    refused, _, refusal = await run("last", "sub_5xx", "--subscription", "sub_ok", "--results-url", base_url)

    assert code == 0, text
    assert by_argument == by_option and {row[1] for row in by_argument} == {"sub_5xx"}
    assert refused == 2 and "SUB" in refusal


async def test_last_shows_the_request_headers_when_asked(monkeypatch, wide_console):
    sent = {"authorization": "Bearer ***", "webhook-id": "evt_1", "content-type": "application/json"}
    answer = {"attempts": [{"started_at": "2026-01-02T03:04:05Z", "subscription_id": "sub_a", "event_type": "t",
                            "attempt": 1, "status_code": 200, "outcome": "success", "latency_ms": 1.0,
                            "error": None, "response_body": "", "request_headers": sent}]}
    asked = []
    monkeypatch.setattr(stats, "fetch", lambda url, path, query: asked.append((path, query)) or answer)

    _, _, plain = await run("last", "sub_a", "--results-url", "http://results.test")
    code, rows, text = await run("last", "sub_a", "--results-url", "http://results.test", "--headers")

    assert code == 0, text
    assert asked[-1] == ("/v1/attempts", {"subscription_id": "sub_a", "tenant": None, "limit": "10"})
    assert "webhook-id" not in plain
    assert [line for row in rows for line in row[8:] if line] == [
        "authorization: Bearer ***", "content-type: application/json", "webhook-id: evt_1"]


async def test_a_refused_parameter_is_an_error_naming_it(stored_mix):
    *_, base_url = stored_mix

    code, _, text = await run("traffic", "--results-url", base_url, "--step", "90")

    assert code == 1
    assert "step" in text and "multiple of 60" in text


async def test_a_tenant_token_lists_its_own_tenant_only(stored_mix, wide_console, monkeypatch):
    records, _, window, base_url = stored_mix
    monkeypatch.setenv("PIPELINE_API_TOKEN", "tok_acme")

    code, rows, text = await run("summary", "--results-url", base_url, "--since", window["from"], "--until",
                                 window["to"], "--by", "tenant")
    refused, _, refusal = await run("last", "--tenant", "globex", "--results-url", base_url)

    assert code == 0, text
    assert [row[0] for row in rows] == ["acme"]
    assert refused == 1 and "tenant" in refusal


async def test_without_a_token_the_results_service_refuses(stored_mix, monkeypatch):
    *_, base_url = stored_mix
    monkeypatch.setenv("PIPELINE_API_TOKEN", "not-a-token")

    code, _, text = await run("last", "--results-url", base_url)

    assert code == 1 and "401" in text and "API token" in text
