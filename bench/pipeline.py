"""`make bench`: end-to-end deliveries per second and publish-to-delivery latency, beside the
raw rate of the HTTP clients posting to the same receiver in the same run.

Everything runs on this machine against 127.0.0.1: the broker, every stage as its own
process, and a receiver process. The ratio to the raw client rate is the figure to compare
across machines; absolute numbers drift.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.http_baseline import raw_post_rate, received_count, receiver_process
from pipeline import eventloop
from pipeline.config import Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.devstack.stack import start_stage, stop_children
from pipeline.kafka.admin import delete_topics_with_prefix, ensure_core_topics
from pipeline.producer import EventPublisher
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter

console = Console()
EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
KEYS = int(os.environ.get("BENCH_KEYS", "1000"))
PACED_EVENTS = int(os.environ.get("BENCH_PACED_EVENTS", "5000"))
PACED_FRACTION = 0.5  # latency is measured at half the saturated rate, where queues stay short


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(probe, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")


def bench_settings(data_dir: Path) -> Settings:
    base = Settings()
    return base.model_copy(update={
        "topic_prefix": f"bench{uuid.uuid4().hex[:6]}.", "data_dir": data_dir,
        "clickhouse_dsn": f"chdb://{data_dir / 'clickhouse'}", "results_port": free_port(),
    })


def stage_environment(settings: Settings) -> dict[str, str]:
    return os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": settings.topic_prefix,
        "PIPELINE_DATA_DIR": str(settings.data_dir),
        "CLICKHOUSE_DSN": settings.resolved_clickhouse_dsn,
        "PIPELINE_RESULTS_PORT": str(settings.results_port),
        "PIPELINE_ALLOWED_NETWORKS": "127.0.0.0/8",  # the receiver runs here; the guard stays on
        "PIPELINE_ALLOW_HTTP": "true",
    }


def publish_and_wait(publisher: EventPublisher, base_url: str, count: int, already: int,
                     rate: float | None = None) -> float:
    """Publishes count events (at `rate` per second, or as fast as possible) and waits for them all.

    The publisher is made once per run and warmed up: a new one would spend its first few hundred
    milliseconds connecting, and the events it stamped meanwhile would count that as latency."""
    start = time.perf_counter()
    for n in range(count):
        if rate is not None:
            pause = start + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # what is queued leaves within the producer's linger meanwhile
        publisher.publish_fields(type="bench.event", ordering_key=f"key-{n % KEYS}",
                                 data=json.dumps({"n": n, "pad": "x" * 900}).encode())
    publisher.flush()
    wait_for(lambda: (received_count(base_url) or 0) >= already + count, 600, f"{count} deliveries")
    return time.perf_counter() - start


def latencies_ms(base_url: str, skip: int, count: int) -> list[float]:
    received = httpx.get(f"{base_url}/_received", timeout=60).json()[skip:skip + count]
    values = []
    for delivery in received:
        published = datetime.fromisoformat(json.loads(delivery["body"])["time"]).timestamp()
        values.append((delivery["received_at"] - published) * 1000)
    return sorted(values)


def run_pipeline(settings: Settings, base_url: str, hanging_url: str | None = None) -> dict[str, float]:
    """Deliveries to the healthy receiver at base_url; with hanging_url, every event also goes to
    an endpoint that never answers, which must not slow the healthy one."""
    ensure_core_topics(settings)
    commands = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None)
    commands.create({"name": "bench", "url": f"{base_url}/bench", "event_types": ["*"]})
    if hanging_url:
        commands.create({"name": "hanging", "url": f"{hanging_url}/hang", "event_types": ["*"], "timeout_ms": 5000})
    env = stage_environment(settings)
    children = [start_stage(module, env) for module in ("pipeline.router", "pipeline.dispatcher", "pipeline.results")]
    try:
        with EventPublisher(settings) as publisher:
            publish_and_wait(publisher, base_url, 200, 0)  # warm-up: group joins, connections
            seconds = publish_and_wait(publisher, base_url, EVENTS, 200)
            saturated = latencies_ms(base_url, 200, EVENTS)
            paced_rate = PACED_FRACTION * EVENTS / seconds
            publish_and_wait(publisher, base_url, PACED_EVENTS, 200 + EVENTS, rate=paced_rate)
            paced = latencies_ms(base_url, 200 + EVENTS, PACED_EVENTS)
    finally:
        stop_children(children)
        delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topic_prefix)
    return {"rate": EVENTS / seconds, "saturated": percentiles(saturated),
            "paced_rate": paced_rate, "paced": percentiles(paced)}


def percentiles(values: list[float]) -> tuple[float, float]:
    return values[len(values) // 2], values[int(len(values) * 0.99)]


def raw_rates() -> dict[str, Any]:
    """Each client's raw POST rate to a receiver of its own, on the dispatcher's loop (uvloop), so
    the ratio compares like with like. httpx is slow enough that fewer requests tell its rate."""
    with receiver_process() as base_url:
        return {name: eventloop.run(raw_post_rate(name, f"{base_url}/raw", requests, 50))
                for name, requests in (("aiohttp", 5000), ("httpx", 1000))}


def main() -> None:
    KafkaBroker(Settings()).start()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = bench_settings(Path(data_dir) / "alone")
        # The raw rate before and after the end-to-end run: the machine's own drift shows.
        before = raw_rates()
        console.print(f"[bold]end to end[/bold]: {EVENTS} events, {KEYS} ordering keys, client {settings.http_client}")
        with receiver_process() as base_url:
            alone = run_pipeline(settings, base_url)
        after = raw_rates()
        console.print("[bold]isolation[/bold]: the same, beside an endpoint that never answers")
        with receiver_process() as base_url, receiver_process("--hang", "/") as hanging_url:
            beside = run_pipeline(bench_settings(Path(data_dir) / "beside"), base_url, hanging_url)
    from bench import results_sink  # it borrows this module's helpers, so it is imported late

    console.print("[bold]results sink[/bold]: attempt records into ClickHouse")
    sink = results_sink.run()
    console.print(report(alone, beside, before, after, settings.http_client))
    sink_table = Table("measure", "value", title="results sink (embedded ClickHouse)")
    for name, value in results_sink.table_rows(sink):
        sink_table.add_row(name, value)
    console.print(sink_table)


def report(alone: dict, beside: dict, before: dict, after: dict, client: str) -> Table:
    table = Table("measure", "alone", "beside a hanging endpoint", title="make bench (one machine, one run)")
    table.add_row("end-to-end deliveries/s", f"{alone['rate']:,.0f}", f"{beside['rate']:,.0f}")
    table.add_row("publish-to-delivery p50 / p99 (ms), saturated burst",
                  "{:,.0f} / {:,.0f}".format(*alone["saturated"]), "{:,.0f} / {:,.0f}".format(*beside["saturated"]))
    table.add_row("publish-to-delivery p50 / p99 (ms), paced at half the rate",
                  "{:,.0f} / {:,.0f}".format(*alone["paced"]), "{:,.0f} / {:,.0f}".format(*beside["paced"]))
    for name in before:
        table.add_row(f"raw {name} POST/s (concurrency 50), before / after",
                      f"{before[name].rate_per_s:,.0f} / {after[name].rate_per_s:,.0f}", "")
    baseline = (before[client].rate_per_s + after[client].rate_per_s) / 2
    table.add_row(f"ratio end-to-end / raw {client} (their mean)", f"{alone['rate'] / baseline:.2f}",
                  f"{beside['rate'] / baseline:.2f}")
    return table


if __name__ == "__main__":
    main()
