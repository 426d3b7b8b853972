"""`make bench`: end-to-end deliveries per second and publish-to-delivery latency, beside the
raw rate of the HTTP clients posting to the same receiver in the same run.

Everything runs on this machine against 127.0.0.1: the broker, every stage as its own process
(their logs go to files, so the tables are not interleaved with log lines) and a receiver
process. One stack serves every run:
- saturated: a burst of BENCH_EVENTS events to one endpoint, as fast as it goes; the CPU each
  process spends per delivery;
- fan-out: each event to ten endpoints;
- beside a hanging endpoint: the burst again, every event also to an endpoint that never answers;
- the latency curve: events paced at 100, 400 and 1,000 a second and at half the saturated rate;
- the hops of the 100 and 400 a second runs: publish to routed, routed to sent, sent to received;
- the broker's requests per delivery, by kind, for the saturated and paced runs, and its CPU per
  request (bench.broker_requests);
- and whether anything was lost or delivered out of order per key, checked on every delivery.
The ratio of the end-to-end rate to the raw client rate is the figure to compare across
machines; absolute numbers drift.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import hops, stack
from bench.broker_requests import BrokerRequests, per_delivery
from bench.http_baseline import raw_post_rate, received_count, receiver_process
from pipeline import eventloop
from pipeline.config import PROJECT_ROOT, Settings
from pipeline.devstack.kafka_broker import KafkaBroker, own_broker
from pipeline.devstack.ports import free_port
from pipeline.kafka.admin import ensure_core_topics
from pipeline.producer import EventPublisher
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter

console = Console()
EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
KEYS = int(os.environ.get("BENCH_KEYS", "1000"))
PACED_SECONDS = float(os.environ.get("BENCH_PACED_SECONDS", "10"))
PACED_RATES = (100, 400, 1000)
HOP_RATES = (100, 400)  # the floor, and the rate the latency targets name
FAN_OUT = 10
LOGS = PROJECT_ROOT / ".data" / "bench-logs" / "pipeline"
PROFILE = bool(os.environ.get("BENCH_PROFILE"))  # py-spy on every stage during the saturated run


def wait_for(probe, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")


def bench_settings(data_dir: Path, bootstrap_servers: str) -> Settings:
    return Settings().model_copy(update={
        "topic_prefix": f"bench{uuid.uuid4().hex[:6]}.", "data_dir": data_dir,
        "kafka_bootstrap_servers": bootstrap_servers,
        "clickhouse_dsn": f"chdb://{data_dir / 'clickhouse'}", "results_port": free_port(), "api_port": free_port(),
    })


stage_environment = stack.stage_environment


@dataclass
class Run:
    """What one publishing run sent and what came of it."""
    name: str
    events: int
    deliveries: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per delivery, by process
    requests: dict[str, float] = field(default_factory=dict)  # Kafka requests per delivery, by kind

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds

    def percentile(self, fraction: float) -> float:
        return self.latencies_ms[min(len(self.latencies_ms) - 1, int(len(self.latencies_ms) * fraction))]


class Bench:
    def __init__(self, settings: Settings, receiver_url: str, hanging_url: str, pids: dict[str, int],
                 requests: BrokerRequests | None = None):
        self.settings = settings
        self.requests = requests
        self.receiver_url = receiver_url
        self.pids = pids
        commands = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None)
        self.one = commands.create({"name": "one", "url": f"{receiver_url}/one", "event_types": ["one.*", "both.*"]})
        for n in range(FAN_OUT):
            commands.create({"name": f"fan {n}", "url": f"{receiver_url}/fan/{n}", "event_types": ["fan.*"]})
        commands.create({"name": "hanging", "url": f"{hanging_url}/hang", "event_types": ["both.*"], "timeout_ms": 5000})
        self.publisher = EventPublisher(settings)
        self.received = 0
        self.sequences: dict[str, int] = defaultdict(lambda: -1)  # ordering key: last sequence number sent
        self.published = 0
        self.sent_to_one = 0  # events the one endpoint should get

    def publish(self, name: str, event_type: str, count: int, fan: int = 1, rate: float | None = None) -> Run:
        """Publishes count events (paced at rate per second, or as fast as it goes) and waits for
        every delivery; the CPU of each process is read around it."""
        run = Run(name, count, count * fan)
        requests_before = self.requests.counts() if self.requests else {}
        cpu_before = {process: stack.cpu_seconds(pid) for process, pid in self.pids.items()}
        started = time.perf_counter()
        for n in range(count):
            if rate is not None and (pause := started + n / rate - time.perf_counter()) > 0:
                time.sleep(pause)  # what is queued leaves within the producer's linger meanwhile
            key = f"key-{self.published % KEYS}"
            self.sequences[key] += 1
            self.publisher.publish_fields(type=event_type, ordering_key=key,
                                          data=json.dumps({"seq": self.sequences[key], "pad": "x" * 900}).encode())
            self.published += 1
        self.sent_to_one += count if event_type.split(".")[0] in ("one", "both") else 0
        self.publisher.flush()
        wait_for(lambda: (received_count(self.receiver_url) or 0) >= self.received + run.deliveries, 600,
                 f"{run.deliveries} deliveries of {name}")
        run.seconds = time.perf_counter() - started
        run.cpu_ms = {process: ((stack.cpu_seconds(pid) or 0) - (cpu_before[process] or 0)) / run.deliveries * 1000
                      for process, pid in self.pids.items()}
        if self.requests:
            run.requests = per_delivery(requests_before, self.requests.counts(), run.deliveries)
        arrived = httpx.get(f"{self.receiver_url}/_received", timeout=120).json()[self.received:]
        self.received += run.deliveries
        run.latencies_ms = sorted((d["received_at"] - _published(d)) * 1000 for d in arrived)
        return run

    def check_order(self) -> tuple[int, int]:
        """Deliveries to the one endpoint: (missing, out of order per key), over every run."""
        arrived = [json.loads(d["body"]) for d in
                   httpx.get(f"{self.receiver_url}/_received", params={"path": "/one"}, timeout=120).json()]
        last: dict[str, int] = {}
        reordered, seen = 0, set()
        for body in arrived:
            key, seq = body["ordering_key"], body["data"]["seq"]
            reordered += seq < last.get(key, -1)
            last[key] = max(seq, last.get(key, -1))
            seen.add(body["id"])
        return self.sent_to_one - len(seen), reordered

    def hop_timings(self, since: int, count: int) -> list[hops.Timing]:
        arrived = httpx.get(f"{self.receiver_url}/_received", timeout=120).json()[since:since + count]
        received = {json.loads(d["body"])["id"]: d["received_at"] for d in arrived}
        return hops.timings(self.settings, self.one.id, received)


def _published(delivery: dict[str, Any]) -> float:
    body = json.loads(delivery["body"])
    return datetime.fromisoformat((body[0] if isinstance(body, list) else body)["time"]).timestamp()


def run_all(settings: Settings, receiver_url: str, hanging_url: str, broker: KafkaBroker) -> dict[str, Any]:
    ensure_core_topics(settings)
    env = stack.stage_environment(settings)
    stages = [stack.start(name, f"pipeline.{name}", env, LOGS) for name in ("router", "dispatcher", "results")]
    pids = {stage.name: stage.process.pid for stage in stages} | ({"broker": broker.pid} if broker.pid else {})
    receiver_pid = _pid_listening(receiver_url)
    if receiver_pid:
        pids["receiver"] = receiver_pid
    try:
        requests = BrokerRequests(broker)
        bench = Bench(settings, receiver_url, hanging_url, pids, requests)
        bench.publish("warm-up", "one.warm", 200)  # group joins, connections
        spies = stack.start_profiles(stages, LOGS) if PROFILE else []
        saturated = bench.publish("saturated", "one.e", EVENTS)
        if spies:
            stack.stop_profiles(spies)
            _write_hottest(stages)
        fan_out = bench.publish("fan-out", "fan.e", EVENTS // FAN_OUT, fan=FAN_OUT)
        beside = bench.publish("beside a hanging endpoint", "both.e", EVENTS // 2)
        curve, hop_runs = [], {}
        for rate in (*PACED_RATES, saturated.rate / 2):
            since = bench.received
            run = bench.publish(f"paced at {rate:,.0f}/s", "one.p", int(rate * PACED_SECONDS), rate=rate)
            curve.append((rate, run))
            if rate in HOP_RATES:
                hop_runs[rate] = bench.hop_timings(since, run.deliveries)
        missing, reordered = bench.check_order()
        bench.publisher.flush()
    finally:
        stack.stop(stages)
    return {"saturated": saturated, "fan_out": fan_out, "beside": beside, "curve": curve, "hops": hop_runs,
            "missing": missing, "reordered": reordered, "requests_unavailable": requests.unavailable}


def _write_hottest(stages: list[stack.Stage]) -> None:
    """Where each stage's time went in the saturated run, beside its log (not in the tables)."""
    for stage in stages:
        lines = [f"{samples:8d}  {frame}" for samples, frame in stack.hottest(LOGS / f"{stage.name}.profile", 40)]
        (LOGS / f"{stage.name}.hottest.txt").write_text("\n".join(lines) + "\n")


def _pid_listening(url: str) -> int | None:
    """The receiver process's pid, to count its CPU beside the pipeline's."""
    port = url.rsplit(":", 1)[1]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if f"--port\x00{port}" in Path(f"/proc/{pid}/cmdline").read_text():
                    return int(pid)
            except OSError:
                continue
    return None


def raw_rates() -> dict[str, Any]:
    """Each client's raw POST rate to a receiver of its own, on the dispatcher's loop (uvloop), so
    the ratio compares like with like. httpx is slow enough that fewer requests tell its rate."""
    with receiver_process() as base_url:
        return {name: eventloop.run(raw_post_rate(name, f"{base_url}/raw", requests, 50))
                for name, requests in (("aiohttp", 5000), ("httpx", 1000))}


def main() -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir, own_broker(Path(data_dir)) as broker:
        settings = bench_settings(Path(data_dir), broker.bootstrap)
        before = raw_rates()  # before and after the end-to-end runs: the machine's own drift shows
        console.print(f"[bold]end to end[/bold]: {EVENTS:,} events over {KEYS:,} ordering keys, client "
                      f"{settings.http_client}; stage logs in {LOGS}")
        with receiver_process() as base_url, receiver_process("--hang", "/") as hanging_url:
            results = run_all(settings, base_url, hanging_url, broker)
        after = raw_rates()
        from bench import results_sink  # it borrows this module's helpers, so it is imported late

        console.print("[bold]results sink[/bold]: attempt records into ClickHouse")
        sink = results_sink.run(broker.bootstrap)
    baseline = (before[settings.http_client].rate_per_s + after[settings.http_client].rate_per_s) / 2
    for table in report(results, before, after, baseline, settings.http_client):
        console.print(table)
    sink_table = Table("measure", "value", title="results sink (embedded ClickHouse)")
    for name, value in results_sink.table_rows(sink):
        sink_table.add_row(name, value)
    console.print(sink_table)


def report(results: dict[str, Any], before: dict, after: dict, baseline: float, client: str) -> list[Table]:
    rates = Table("run", "deliveries/s", f"ratio to raw {client}", "p50 / p99 ms", title="throughput (one run)")
    for key in ("saturated", "fan_out", "beside"):
        run: Run = results[key]
        rates.add_row(run.name, f"{run.rate:,.0f}", f"{run.rate / baseline:.2f}",
                      f"{run.percentile(0.5):,.0f} / {run.percentile(0.99):,.0f}")
    for name in before:
        rates.add_row(f"raw {name} POST/s (concurrency 50), before / after",
                      f"{before[name].rate_per_s:,.0f} / {after[name].rate_per_s:,.0f}", "", "")
    curve = Table("paced at", "p50 ms", "p99 ms", "max ms", title="publish-to-delivery latency")
    for rate, run in results["curve"]:
        curve.add_row(f"{rate:,.0f}/s", f"{run.percentile(0.5):.1f}", f"{run.percentile(0.99):.1f}",
                      f"{run.latencies_ms[-1]:.0f}")
    cpu = Table("process", "CPU ms per delivery (saturated)", title="where the CPU goes")
    for process, ms in results["saturated"].cpu_ms.items():
        cpu.add_row(process, f"{ms:.3f}")
    cpu.add_row("all", f"{sum(results['saturated'].cpu_ms.values()):.3f}")
    hop_runs = results["hops"]
    hop_table = Table("hop", *(f"at {rate}/s, p50 / p99 ms" for rate in hop_runs), title="hops of a webhook")
    for index, name in enumerate(hops.HOPS):
        hop_table.add_row(name, *(_p50_p99(sorted(t.hops_ms[index] for t in timings)) for timings in hop_runs.values()))
    verdict = Table("check", "result", title="nothing lost, order kept")
    verdict.add_row("deliveries missing (to the one endpoint)", str(results["missing"]))
    verdict.add_row("deliveries out of order per key", str(results["reordered"]))
    return [rates, curve, cpu, requests_table(results), hop_table, verdict]


def requests_table(results: dict[str, Any]) -> Table:
    """The broker's requests per delivery by kind, for the saturated run and the paced ones, and
    the broker's CPU per request they come to."""
    runs: list[Run] = [results["saturated"], *(run for _, run in results["curve"])]
    table = Table("Kafka requests per delivery", *(run.name for run in runs), title="what the broker served")
    if results.get("requests_unavailable"):
        table.caption = f"not read: {results['requests_unavailable']}"
        return table
    kinds = sorted({kind for run in runs for kind in run.requests}, key=lambda k: -results["saturated"].requests.get(k, 0))
    shown = [kind for kind in kinds if any(run.requests.get(kind, 0) >= 0.01 for run in runs)]
    for kind in shown:
        table.add_row(kind, *(f"{run.requests.get(kind, 0):.2f}" for run in runs))
    table.add_row("all", *(f"{sum(run.requests.values()):.2f}" for run in runs))
    table.add_row("broker CPU ms per request", *(_per_request(run) for run in runs))
    return table


def _per_request(run: Run) -> str:
    requests = sum(run.requests.values())
    return f"{run.cpu_ms['broker'] / requests:.2f}" if requests and "broker" in run.cpu_ms else "-"


def _p50_p99(values: list[float]) -> str:
    return f"{values[len(values) // 2]:.1f} / {values[int(len(values) * 0.99)]:.1f}" if values else "-"


if __name__ == "__main__":
    main()
