"""An endpoint that stops answering keeps its tasks queued: its backlog reads 100 and grows older,
from the admin API, the CLI and the dispatcher's metrics, and 0 once the endpoint is back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from pipeline.api.app import create_app
from pipeline.cli import output
from pipeline.cli.main import app as cli
from pipeline.config import Settings
from pipeline.producer import EventPublisher
from pipeline.receiver import Receiver
from tests.conftest import stage_env
from tests.metrics.scrape import scrape, value
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

ADMIN = {"Authorization": "Bearer adm_test"}
EVENTS = 100


@pytest.mark.integration
def test_backlog_of_a_failing_endpoint_reads_100_growing_older_then_0(settings: Settings, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output.console, "width", 220)  # the CLI prints a table row per line
    settings = settings.model_copy(update={"api_tokens": SecretStr(json.dumps({"adm_test": "*"})),
                                           "backlog_metrics_interval_s": 1.0})
    down = {"answer": 503}
    receiver = Receiver(respond=lambda _: down["answer"])
    base_url = receiver.start()
    metrics_url = f"http://127.0.0.1:{settings.dispatcher_metrics_port}/metrics"
    logs = tmp_path / "logs"
    try:
        with TestClient(create_app(settings)) as api, \
                running_stages(settings, ["pipeline.router", "pipeline.dispatcher", "pipeline.results"], logs):
            # One lane, retried for ever: the first task holds every other behind it.
            created = api.post("/v1/subscriptions", headers=ADMIN, json={
                "name": "down", "url": f"{base_url}/down", "event_types": ["order.*"], "ordering": "strict",
                "when_retries_exhausted": "block"}).json()
            subscription = created["id"]
            quiet = api.post("/v1/subscriptions", headers=ADMIN, json={
                "name": "quiet", "url": f"{base_url}/quiet", "event_types": ["never.sent"]}).json()["id"]
            with EventPublisher(settings) as publisher:
                for n in range(EVENTS):
                    publisher.publish_fields(type="order.paid", ordering_key=f"order-{n}", source="test",
                                             data=json.dumps({"n": n}).encode())

            def backlog() -> dict:
                return api.get(f"/v1/subscriptions/{subscription}/backlog", headers=ADMIN).json()

            with logs_on_failure(logs):
                wait_until(lambda: receiver.count >= 2, timeout_s=60, what="the endpoint tried and failing")
                first = wait_until(lambda: (b := backlog())["pending"] == EVENTS and b, timeout_s=30,
                                   what=f"a backlog of {EVENTS}")
                later = wait_until(lambda: (b := backlog())["oldest_pending_age_s"] > first["oldest_pending_age_s"]
                                   and b, timeout_s=10, what="the oldest pending task growing older")
                listed = api.get("/v1/backlog", headers=ADMIN).json()["data"]
                pending_only = api.get("/v1/backlog?pending_only=true", headers=ADMIN).json()["data"]
                from_cli = _cli_backlog(settings, subscription)
                # The sink writes in batches: the row can show one failed attempt before it shows two.
                overview = wait_until(lambda: (o := _cli_overview(settings, subscription)) and int(o[1]) >= 2 and o,
                                      timeout_s=30, what="two failed attempts in `pipeline stats --backlog`")
                gauged = wait_until(lambda: (s := scrape(metrics_url)) and
                                    value(s, "webhook_endpoint_backlog_messages", subscription_id=subscription)
                                    == EVENTS and s, timeout_s=30, what="the dispatcher's backlog gauge")

                down["answer"] = 204
                drained = wait_until(lambda: (b := backlog())["pending"] == 0 and b, timeout_s=60,
                                     what="the backlog delivered")
                drained_cli = _cli_backlog(settings, subscription)
                gauge_drained = wait_until(
                    lambda: (s := scrape(metrics_url)) and
                    value(s, "webhook_endpoint_backlog_messages", subscription_id=subscription) == 0 and s,
                    timeout_s=30, what="the dispatcher's backlog gauge back to 0")
    finally:
        receiver.stop()

    assert first["oldest_pending_at"] is not None
    assert later["pending"] == EVENTS and later["oldest_pending_at"] == first["oldest_pending_at"]
    assert {row["subscription_id"]: row["pending"] for row in listed} == {subscription: EVENTS, quiet: 0}
    assert [row["subscription_id"] for row in pending_only] == [subscription]
    assert from_cli[0] == str(EVENTS) and float(from_cli[2]) >= first["oldest_pending_age_s"]
    assert overview[0] == "0"  # delivered, failed, ...
    assert overview[-3] == str(EVENTS) and float(overview[-1]) >= first["oldest_pending_age_s"]
    assert value(gauged, "webhook_endpoint_oldest_pending_age_seconds", subscription_id=subscription) > 0
    assert drained == {"subscription_id": subscription, "pending": 0, "oldest_pending_at": None,
                       "oldest_pending_age_s": None}
    assert drained_cli == ["0", "-", "-"]
    assert value(gauge_drained, "webhook_endpoint_oldest_pending_age_seconds", subscription_id=subscription) == 0
    assert len(receiver.by_path("/down")) > EVENTS  # every task delivered, after the failed tries


def _cli_backlog(settings: Settings, subscription: str) -> list[str]:
    """pending, oldest pending, age: the cells of the subscription's row of `pipeline stats backlog`."""
    result = CliRunner().invoke(cli, ["stats", "backlog", subscription], env=stage_env(settings))
    assert result.exit_code == 0, result.output
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.output.splitlines()
            if line.startswith("│") and subscription[:8] in line]
    assert rows, result.output
    return rows[0][2:]


def _cli_overview(settings: Settings, subscription: str) -> list[str] | None:
    """The cells after the id of the subscription's row of `pipeline stats --backlog`, once it has one."""
    result = CliRunner().invoke(cli, ["stats", "--backlog"], env=stage_env(settings))
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.output.splitlines()
            if line.startswith("│") and subscription[:8] in line]
    return rows[0][1:] if result.exit_code == 0 and rows else None
