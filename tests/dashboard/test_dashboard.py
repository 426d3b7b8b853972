"""The dashboard in a real headless chromium: it loads, draws the data just delivered, refreshes
by itself, and leaves a screenshot in test-artifacts/dashboard.png."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.results import client
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.snapshot import read_snapshot
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.conftest import ARTIFACTS, stage_env
from tests.dashboard.browser import Chromium, chromium_binary
from tests.polling import answers, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_binary() is None, reason="no chromium: `apt-get install -y chromium` (make test does)"),
]

TOKEN = "adm_dashboard_test"
# name -> [(outcome, status, latency_ms, attempt)] per attempt, spread over the last 50 minutes
PLAN = {
    "orders": [("success", 200, 20.0 + n % 40, 1) for n in range(40)],
    "signups": [("success", 201, 80.0 + n, 1) for n in range(20)] + [("http_error", 500, 120.0, 1)] * 5,
    "invoices": [("timeout", None, 2000.0, 1)] * 6 + [("success", 200, 300.0, 2)] * 6,  # retried, then delivered
}
DECISIONS = [("routed", None)] * 50 + [("dropped", "no_match")] * 6 + [("dropped", "paused")] * 2


def attempt_record(now: datetime, subscription_id: str, index: int, outcome: str, status: int | None,
                   latency_ms: float, attempt: int) -> dict:
    started = now - timedelta(minutes=50 - index % 48, seconds=index % 50)
    return {
        "attempt_id": uuid.uuid4().hex, "event_id": f"evt_{uuid.uuid4().hex}", "event_type": "order.paid",
        "event_time": started.replace(microsecond=0), "subscription_id": subscription_id, "tenant": "",
        "attempt": attempt,
        "endpoint_host": "hooks.example.com", "started_at": started, "latency_ms": latency_ms, "status_code": status,
        "outcome": outcome, "error": None if outcome == "success" else (f"HTTP {status}" if status else "timed out"),
        "request_bytes": 300, "response_bytes": 2, "response_body": "ok" if outcome == "success" else "",
    }


def decision_record(now: datetime, index: int, outcome: str, reason: str | None) -> dict:
    return {"event_id": f"evt_{uuid.uuid4().hex}", "event_type": "order.paid", "source": "shop", "tenant": "",
            "event_time": None, "decided_at": now - timedelta(minutes=45 - index % 40),
            "matched": ["x"] if reason is None else [], "outcome": outcome, "reason": reason, "error": None}


def produce(settings: Settings, topic: str, schema: str, records: list[dict]) -> None:
    producer = reliable_producer(settings)
    for index, record in enumerate(records):
        producer.produce(topic, key=str(index).encode(), value=codec(schema).encode(record))
    flush_or_raise(producer)


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Subscriptions, the results service and the admin API as processes; yields their ids and URLs."""
    commands = SubscriptionCommands(SubscriptionWriter(settings), lambda i: read_snapshot(settings).get(i))
    ids = {name: commands.create({"name": name, "url": f"https://{name}.example.com/hook",
                                  "event_types": ["order.*"]}).id for name in PLAN}
    env = stage_env(settings) | {"PIPELINE_API_TOKENS": json.dumps({TOKEN: "*"})}
    processes = []
    for module in ("pipeline.results", "pipeline.api"):
        log = (tmp_path / f"{module}.log").open("wb")
        processes.append(subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))
    try:
        yield {"ids": ids, "results": f"http://127.0.0.1:{settings.results_port}",
               "api": f"http://127.0.0.1:{settings.api_port}", "logs": tmp_path}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def deliver(settings: Settings, ids: dict[str, str], plan: dict[str, list[tuple]]) -> int:
    names = TopicNames.from_settings(settings)
    now = datetime.now(timezone.utc)  # when the test runs: the dashboard shows the last hour
    records = [attempt_record(now, ids[name], index, *attempt)
               for name, attempts in plan.items() for index, attempt in enumerate(attempts)]
    produce(settings, names.results, "delivery_attempt", records)
    return len(records)


def counted(results_url: str) -> int | None:
    try:
        return client.count_attempts(results_url, token=TOKEN, timeout_s=2)
    except Exception:  # still starting
        return None


CHARTS_JS = """(() => {
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const inked = (chart, index) => {  // pixels in a series' colour: its line was drawn
    const colour = rgb(dashboard.palette[index % dashboard.palette.length]);
    const canvas = chart.ctx.canvas;
    const pixels = chart.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 0; i < pixels.length; i += 4)
      if (pixels[i + 3] > 200 && colour.every((c, k) => Math.abs(pixels[i + k] - c) < 40)) count++;
    return count;
  };
  const out = {};
  for (const [name, chart] of Object.entries(dashboard.charts)) {
    const labels = chart.series.slice(1).map((s) => s.label);
    const sums = chart.data.slice(1).map((ys) => ys.reduce((total, y) => total + (y || 0), 0));
    out[name] = {sums: Object.fromEntries(labels.map((label, i) => [label, sums[i]])),
                 inked: Object.fromEntries(labels.map((label, i) => [label, inked(chart, i)])),
                 points: chart.data[0].length};
  }
  return out;
})()"""


def queue_tasks(settings: Settings, subscription_id: str, count: int) -> None:
    """Tasks in an endpoint topic that no dispatcher takes: its backlog."""
    producer = reliable_producer(settings)
    for index in range(count):
        producer.produce(TopicNames.from_settings(settings).endpoint(subscription_id), key=str(index).encode(),
                         value=b"task")
    flush_or_raise(producer)


async def test_the_dashboard_draws_the_delivered_data_and_refreshes_itself(settings, stack, tmp_path):
    total = deliver(settings, stack["ids"], PLAN)
    queue_tasks(settings, stack["ids"]["invoices"], 7)
    produce(settings, TopicNames.from_settings(settings).routing, "routing_decision",
            [decision_record(datetime.now(timezone.utc), i, *d) for i, d in enumerate(DECISIONS)])
    wait_until(lambda: counted(stack["results"]) == total, timeout_s=60, what=f"{total} attempts stored")
    wait_until(lambda: answers(stack["api"] + "/healthz"), timeout_s=60, what="the admin API")

    async with Chromium(chromium_binary(), tmp_path / "profile") as browser:
        await browser.navigate(f"{stack['api']}/dashboard/#token={TOKEN}&refresh=2")
        await browser.wait_for("window.dashboard && (dashboard.lastError || dashboard.refreshes >= 1)", "a refresh")
        assert await browser.evaluate("dashboard.lastError") is None
        charts = await browser.evaluate(CHARTS_JS)

        assert charts["traffic"]["sums"] == {name: len(attempts) for name, attempts in PLAN.items()}
        assert charts["errors"]["sums"] == {"orders": 0, "signups": 5, "invoices": 6}
        assert set(charts["latency"]["sums"]) == set(PLAN) and charts["latency"]["sums"]["invoices"] > 0
        assert charts["routing"]["sums"] == {"routed": 50, "no_match": 6, "paused": 2}
        for name, chart in charts.items():  # every series with data has its line on the canvas
            assert all(chart["inked"][label] > 50 for label, total in chart["sums"].items() if total), (name, chart)
        assert await browser.evaluate("document.querySelectorAll('#table-last tbody tr').length") == 10
        reasons = await browser.evaluate("document.querySelector('#table-reasons').innerText")
        assert "HTTP 500" in reasons and "timed out" in reasons
        cards = await browser.evaluate("document.querySelector('#cards').innerText")
        assert f"{total}\nattempts" in cards.lower() and "6\nretried, then delivered" in cards.lower()
        assert "7\ntasks pending" in cards.lower()
        backlog = await browser.evaluate("Array.from(document.querySelectorAll('#table-backlog tbody tr'), "
                                         "(row) => Array.from(row.cells, (c) => c.innerText))")
        assert [row[:2] for row in backlog] == [["invoices", "7"]] and backlog[0][3].endswith(" s")

        more = deliver(settings, stack["ids"], {"orders": [("success", 200, 25.0, 1)] * 10})
        wait_until(lambda: counted(stack["results"]) == total + more, timeout_s=60, what="the later attempts")
        await browser.wait_for(f"({CHARTS_JS}).traffic.sums.orders === 50",
                               "the dashboard to refresh by itself with the later attempts")
        await browser.screenshot(ARTIFACTS / "dashboard.png")

    assert (ARTIFACTS / "dashboard.png").stat().st_size > 20_000

