"""`make bench-scale`: ten thousand endpoints on one machine, and what adding them costs the others.

The whole stack runs here (broker, router, dispatcher, results service, admin API, a receiver
process). One steady endpoint gets 100 events a second throughout. Endpoints are created through
the admin API in waves up to BENCH_SCALE_ENDPOINTS (each with its own event type and URL path),
and each new endpoint is sent one event as soon as it exists; the API keeps BENCH_SCALE_POOL
endpoint topics made ahead (1,000; 0 for none), and each wave starts once they are ready. For each
wave the table shows the creation rate, the first-event latency of the new endpoints, and the
steady endpoint's latency and longest gap between deliveries while the wave was created. Then
the resident memory of every process, and a second dispatcher: once the shards are shared, one
of the two is killed with SIGKILL while a sample of endpoints gets an event a second each, and
the table shows, for the sampled endpoints the killed one owned and for those the survivor owned,
how many went more than 2.5 s without a delivery after the kill and the longest gap. Who owned
which is read from the two dispatchers' metrics just before the kill: each exports the backlog of
the endpoints it owns, and of those only.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench import hops, stack
from bench.http_baseline import receiver_process
from pipeline.config import PROJECT_ROOT, Settings
from pipeline.devstack.kafka_broker import own_broker
from pipeline.devstack.ports import free_port
from pipeline.kafka.admin import ensure_core_topics
from pipeline.producer import EventPublisher

console = Console()
ENDPOINTS = int(os.environ.get("BENCH_SCALE_ENDPOINTS", "10000"))
WAVES = sorted({n for n in (100, 1000, 5000, ENDPOINTS - 1000, ENDPOINTS) if 0 < n <= ENDPOINTS})
STEADY_RATE = 100.0
CREATE_CONCURRENCY = 32
# Endpoint topics the API makes ahead (PIPELINE_ENDPOINT_TOPIC_POOL); each wave starts once the
# pool is full, as a burst of new customers would find it after a quiet while.
POOL = int(os.environ.get("BENCH_SCALE_POOL", "1000"))
SAMPLE, SAMPLE_SECONDS, KILL_AFTER_S = 300, 30, 8
WAITED_S = 2.5  # a sampled endpoint (an event a second) this long without a delivery after the kill waited
HOPS_SAMPLE = 50  # new endpoints per wave whose first event's hops are read back from Kafka
TOKEN = "bench_admin"
LAG_COUNTS = ("over 0.25 s", "over 1 s", "late in all")  # of _dispatcher_held, beside the calls by name
PROFILE = bool(os.environ.get("BENCH_PROFILE"))  # py-spy on every stage during the last wave


def scale_settings(data_dir: Path, bootstrap_servers: str) -> Settings:
    return Settings().model_copy(update={
        "topic_prefix": f"scale{uuid.uuid4().hex[:6]}.", "data_dir": data_dir,
        "kafka_bootstrap_servers": bootstrap_servers,
        "clickhouse_dsn": f"chdb://{data_dir / 'clickhouse'}", "results_port": free_port(), "api_port": free_port(),
        # Read by this benchmark, so on ports known to be free: a stage whose port is taken takes the next one.
        "router_metrics_port": free_port(), "dispatcher_metrics_port": free_port()})


class Receipts:
    """What the receiver got, fetched once per look: by path, (received_at, event time, body data)."""

    def __init__(self, receiver_url: str):
        self.receiver_url = receiver_url

    def count(self) -> int:
        return httpx.get(f"{self.receiver_url}/_count", timeout=30).json()["count"]

    def by_path(self) -> dict[str, list[tuple[float, float, dict]]]:
        found: dict[str, list[tuple[float, float, dict]]] = defaultdict(list)
        for delivery in httpx.get(f"{self.receiver_url}/_received", timeout=120).json():
            body = json.loads(delivery["body"])
            published = _epoch(body["time"])
            found[delivery["path"]].append((delivery["received_at"], published, body["data"]))
        return found


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


class Ticker(threading.Thread):
    """Publishes `per_tick` events every `interval_s` until stopped, each with its sequence number."""

    def __init__(self, publisher: EventPublisher, targets: list[tuple[str, str]], interval_s: float):
        super().__init__(daemon=True)
        self.publisher, self.targets, self.interval_s = publisher, targets, interval_s
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        start, tick = time.monotonic(), 0
        while not self.stopping.is_set():
            for event_type, key in self.targets:
                self.publisher.publish_fields(type=event_type, ordering_key=key,
                                              data=json.dumps({"seq": tick}).encode())
            self.sent += 1
            tick += 1
            self.stopping.wait(max(0.0, start + tick * self.interval_s - time.monotonic()))


async def create_endpoints(api_url: str, receiver_url: str, numbers: range, publisher: EventPublisher) -> dict:
    """Creates an endpoint per number through the admin API, CREATE_CONCURRENCY at a time, and
    sends each one event as soon as it exists. Returns the creation rate and the ids."""
    slots = asyncio.Semaphore(CREATE_CONCURRENCY)
    ids: dict[int, str] = {}
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        async def one(n: int) -> None:
            async with slots:
                answer = await client.post("/v1/subscriptions", json={
                    "name": f"scale {n}", "url": f"{receiver_url}/e/{n}", "event_types": [f"scale.e{n}"]})
                if answer.status_code != 201:
                    raise RuntimeError(f"creating endpoint {n}: {answer.status_code} {answer.text}")
                ids[n] = answer.json()["id"]
                publisher.publish_fields(type=f"scale.e{n}", ordering_key="first", data=json.dumps({"n": n}).encode())

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in numbers))
        seconds = time.perf_counter() - started
    publisher.flush()
    return {"rate": len(numbers) / seconds, "seconds": seconds, "ids": ids}


def steady_window(deliveries: list[tuple[float, float, dict]], start: float, end: float) -> dict:
    """The steady endpoint's latency and longest gap between deliveries received within [start, end]."""
    arrivals = sorted(received for received, _, _ in deliveries)
    inside = [(received, published) for received, published, _ in deliveries if start <= received <= end]
    latencies = sorted((received - published) * 1000 for received, published in inside)
    before = [t for t in arrivals if t < start][-1:]
    times = before + sorted(received for received, _ in inside) + [end]
    gap = max(b - a for a, b in zip(times, times[1:])) if len(times) > 1 else end - start
    return {"p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99), "max": latencies[-1] if latencies else None,
            "gap_s": gap, "count": len(inside)}


class BacklogWatch(threading.Thread):
    """The steady endpoint's backlog in its own topic, once a second: tasks routed and waiting for
    the dispatcher. Set beside its latency, it says which stage the steady events wait in."""

    def __init__(self, api_url: str, subscription_id: str):
        super().__init__(daemon=True)
        self.url = f"{api_url}/v1/subscriptions/{subscription_id}/backlog"
        self.samples: list[tuple[float, int, float]] = []  # when, pending, oldest age in s
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
            while not self.stopping.wait(1.0):
                try:
                    answer = client.get(self.url)
                except httpx.HTTPError:
                    continue  # the API busy: a missed sample, not a failed benchmark
                if answer.status_code != 200:
                    continue  # the broker too busy to tell the offsets in time (503): the same
                view = answer.json()
                self.samples.append((time.time(), view["pending"], view["oldest_pending_age_s"] or 0.0))

    def worst(self, start: float, end: float) -> tuple[int, float] | None:
        inside = [(pending, age) for at, pending, age in self.samples if start <= at <= end]
        return (max(p for p, _ in inside), max(a for _, a in inside)) if inside else None


def _pct(values: list[float], fraction: float) -> float | None:
    return values[min(len(values) - 1, int(len(values) * fraction))] if values else None


def run_waves(settings: Settings, api_url: str, receiver_url: str, publisher: EventPublisher,
              receipts: Receipts, pids: dict[str, int], stages: list, logs: Path, steady_id: str) -> list[dict]:
    waves, created = [], 0
    for target in WAVES:
        _wait(lambda: _pooled(api_url) >= min(POOL, target - created), 1800, "the pool of endpoint topics filled", 2.0)
        spies = stack.start_profiles(stages, logs) if PROFILE and target == WAVES[-1] else []
        started, cpu_before = time.time(), {name: stack.cpu_seconds(pid) for name, pid in pids.items()}
        waited_before, held_before = _router_catch_up(settings), _dispatcher_held(settings)
        made = asyncio.run(create_endpoints(api_url, receiver_url, range(created, target), publisher))
        ended = time.time()
        made["catch_up"] = [after - before for after, before in zip(_router_catch_up(settings), waited_before)]
        held = _dispatcher_held(settings)
        made["held"] = {name: value - held_before.get(name, 0.0) for name, value in held.items()}
        stack.stop_profiles(spies)
        cpu = {name: (stack.cpu_seconds(pid) or 0) - (cpu_before[name] or 0) for name, pid in pids.items()}
        waves.append({"target": target, "from": created, "start": started, "end": ended, "cpu": cpu, **made})
        per_endpoint = ", ".join(f"{name} {seconds / (target - created) * 1000:.1f}" for name, seconds in cpu.items())
        created = target
        console.print(f"  {target:>6,} endpoints, created at {made['rate']:,.0f}/s; CPU ms per endpoint: {per_endpoint}")
    received = _until_quiet(receipts, lambda found: _first_events(found) >= created)
    if PROFILE:
        for stage in stages:
            console.print(f"[bold]{stage.name}[/bold] during the last wave (samples on the stack):")
            for samples, frame in stack.hottest(logs / f"{stage.name}.profile"):
                console.print(f"  {samples:>6} {frame}")
    for wave in waves:
        firsts = sorted((received[f"/e/{n}"][0][0] - received[f"/e/{n}"][0][1]) * 1000
                        for n in range(wave["from"], wave["target"]) if received.get(f"/e/{n}"))
        wave["first_p50"], wave["first_p99"] = _pct(firsts, 0.5), _pct(firsts, 0.99)
        wave["first_missing"] = wave["target"] - wave["from"] - len(firsts)
        wave["steady"] = steady_window(received["/steady"], wave["start"], wave["end"])
    first_event_hops(settings, waves, received, steady_id)
    return waves


def first_event_hops(settings: Settings, waves: list[dict], received: dict, steady_id: str) -> None:
    """Where the first events of a sample of each wave's endpoints waited: before the router
    routed them, before the dispatcher began the attempt, and on the way to the receiver. And how
    often the steady endpoint's one lane began an attempt, beside how long its requests took."""
    samples = {wave["target"]: random.sample(sorted(wave["ids"].items()), min(HOPS_SAMPLE, len(wave["ids"])))
               for wave in waves}
    ids = [subscription_id for sample in samples.values() for _, subscription_id in sample]
    attempts = hops.attempts_of(settings, {*ids, steady_id})
    routed = hops.first_tasks(settings, ids)
    started = {subscription_id: min(at for at, _ in found) for subscription_id, found in attempts.items()}
    steady = sorted(attempts.get(steady_id, []))
    for wave in waves:
        timings = [(received[f"/e/{n}"][0][1], routed[i], started[i], received[f"/e/{n}"][0][0])
                   for n, i in samples[wave["target"]] if received.get(f"/e/{n}") and i in routed and i in started]
        wave["first_hops"] = [sorted((t[k + 1] - t[k]) * 1000 for t in timings) for k in range(3)] if timings else []
        inside = [(at, http_ms) for at, http_ms in steady if wave["start"] <= at <= wave["end"]]
        wave["steady_lane"] = (sorted((b[0] - a[0]) * 1000 for a, b in zip(inside, inside[1:])),
                               sorted(http_ms for _, http_ms in inside))


def _until_quiet(receipts: Receipts, done, quiet_s: float = 15.0) -> dict:  # type: ignore[no-untyped-def]
    """What arrived, once done(it) or no new endpoint got its first event for quiet_s: a missing
    event is reported, not waited for."""
    last_count, last_change = -1, time.monotonic()
    while True:
        received = receipts.by_path()
        count = _first_events(received)
        if done(received) or time.monotonic() - last_change > quiet_s:
            return received
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        time.sleep(2.0)


def _first_events(received: dict) -> int:
    return sum(1 for path in received if path.startswith("/e/"))


def _wait(probe, timeout_s: float, what: str, interval_s: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")


def kill_one_dispatcher(settings: Settings, env: dict, logs: Path, stages: list, waves: list[dict],
                        publisher: EventPublisher, receipts: Receipts) -> dict:
    """A second dispatcher joins; once shards are shared, it is killed while a sample of endpoints
    gets an event a second each."""
    second_port = free_port()
    second = stack.start("dispatcher-2", "pipeline.dispatcher", env | {"PIPELINE_DISPATCHER_METRICS_PORT": str(second_port)},
                         logs)
    stages.append(second)
    _wait(lambda: "shards gained" in second.log.read_text(errors="replace"), 120, "the second dispatcher to get shards")
    _settle(logs / "dispatcher.log", second.log)
    sample = random.Random(7).sample(range(ENDPOINTS), min(SAMPLE, ENDPOINTS))
    ids = {wave["ids"][n]: n for wave in waves for n in sample if n in wave["ids"]}
    ticker = Ticker(publisher, [(f"scale.e{n}", "tick") for n in sample], 1.0)
    ticker.start()
    time.sleep(KILL_AFTER_S)  # a steady stream before the kill, to compare with after it
    killed_owned = owners(settings.dispatcher_metrics_port, second_port, set(ids))
    held_before = _dispatcher_held(settings)
    killed_at = time.time()
    second.process.send_signal(signal.SIGKILL)
    time.sleep(SAMPLE_SECONDS - KILL_AFTER_S)
    ticker.stopping.set()
    ticker.join()
    publisher.flush()
    expected = ticker.sent
    try:
        _wait(lambda: not _missing_ticks(receipts, sample, expected), 120, "every sampled event delivered", 2.0)
    except TimeoutError:
        missing = _missing_ticks(receipts, sample, expected)
        console.print(f"{len(missing)} sampled endpoints miss events: {dict(list(missing.items())[:10])}")
        ids = {n: wave["ids"][n] for wave in waves for n in missing if n in wave["ids"]}
        api = f"http://127.0.0.1:{settings.api_port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for n, subscription_id in list(ids.items())[:5]:
            backlog = httpx.get(f"{api}/v1/subscriptions/{subscription_id}/backlog", timeout=30, headers=headers).text
            # Waiting on the retry schedule (5 min after a second failure) or never fetched?
            attempts = httpx.get(f"{api}/v1/attempts", params={"subscription_id": subscription_id, "limit": "5"},
                                 timeout=30, headers=headers).text
            console.print(f"endpoint {n} ({subscription_id}): backlog {backlog}; last attempts {attempts[:1500]}")
        raise
    killed = {ids[s] for s in killed_owned} if killed_owned is not None else None
    held = {name: value - held_before.get(name, 0.0) for name, value in _dispatcher_held(settings).items()}
    return sampled_gaps(receipts.by_path(), sample, killed_at, time.time(), expected, killed) | {"held": held}


def owners(first_port: int, second_port: int, sampled: set[str], timeout_s: float = 60.0) -> set[str] | None:
    """The sampled subscriptions the second dispatcher owns, once the two dispatchers' metrics
    split the sample between them, each endpoint in one only (a gauge follows a handover within
    the backlog interval, PIPELINE_BACKLOG_METRICS_INTERVAL_S); None if they never did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        first, second = (owned_subscriptions(port) & sampled for port in (first_port, second_port))
        if first | second == sampled and not first & second:
            return second
        time.sleep(1.0)
    console.print("[red]the dispatchers' metrics never split the sample between them: waits are told apart by gap[/red]")
    return None


def owned_subscriptions(port: int) -> set[str]:
    """The subscriptions a dispatcher exports a backlog for: those it owns."""
    try:
        samples = _samples(port, "webhook_endpoint_backlog_messages")
    except httpx.HTTPError:
        return set()
    return {sample.labels["subscription_id"] for sample in samples if sample.name == "webhook_endpoint_backlog_messages"}


def _missing_ticks(receipts: Receipts, sample: list[int], expected: int) -> dict[int, list[int]]:
    """The tick numbers each sampled endpoint has not received yet."""
    found = receipts.by_path()
    return {n: missing for n in sample
            if (missing := sorted(set(range(expected)) - {d["seq"] for _, _, d in found.get(f"/e/{n}", []) if "seq" in d}))}


def _settle(*logs: Path, quiet_s: float = 5.0) -> None:
    """Until neither dispatcher has logged a change of ownership for quiet_s."""
    def settled() -> bool:
        newest = max(log.stat().st_mtime for log in logs)
        return time.time() - newest >= quiet_s
    _wait(settled, 180, "the dispatchers to settle their shards")


def sampled_gaps(received: dict, sample: list[int], killed_at: float, end: float, expected: int,
                 killed: set[int] | None) -> dict:
    """Each sampled endpoint's longest gap after the kill, by owner: the killed dispatcher's and the
    survivor's (by gap alone, over WAITED_S or not, when the owners are not known)."""
    gaps, lost, reordered = {}, 0, 0
    for n in sample:
        ticks = [(r, d["seq"]) for r, _, d in received.get(f"/e/{n}", []) if "seq" in d]
        seqs = [seq for _, seq in ticks]
        lost += expected - len(set(seqs))
        firsts = list(dict.fromkeys(seqs))
        reordered += firsts != sorted(firsts)
        times = [killed_at] + sorted(r for r, _ in ticks if killed_at <= r <= end)
        gaps[n] = max(b - a for a, b in zip(times, times[1:])) if len(times) > 1 else end - killed_at
    owners_known = killed is not None
    if killed is None:
        killed = {n for n, gap in gaps.items() if gap > WAITED_S}
    groups = {"killed": [gaps[n] for n in sample if n in killed], "survivor": [gaps[n] for n in sample if n not in killed]}
    return {"by_owner": {owner: {"endpoints": len(found), "waited": sum(gap > WAITED_S for gap in found),
                                 "longest": max(found, default=0.0)} for owner, found in groups.items()},
            "owners_known": owners_known, "lost": lost, "reordered": reordered,
            "steady": steady_window(received["/steady"], killed_at, end)}


def memory(stages: list, broker_pid: int | None) -> list[tuple[str, float | None]]:
    found = [("broker", stack.resident_mb(broker_pid) if broker_pid else None)]
    return found + [(stage.name, stack.resident_mb(stage.process.pid)) for stage in stages]


def main() -> None:
    with (tempfile.TemporaryDirectory() as tmp, own_broker(Path(tmp)) as broker,
          receiver_process() as receiver_url):
        settings = scale_settings(Path(tmp), broker.bootstrap)
        logs = PROJECT_ROOT / ".data" / "bench-logs" / "scale"
        shutil.rmtree(logs, ignore_errors=True)
        try:
            report(*run(settings, receiver_url, logs, broker.pid))
        finally:
            console.print(f"the stages' logs are in {logs}")


def run(settings: Settings, receiver_url: str, logs: Path, broker_pid: int | None) -> tuple:
    ensure_core_topics(settings)
    env = stack.stage_environment(settings, PIPELINE_API_TOKENS=json.dumps({TOKEN: "*"}),
                                  PIPELINE_ENDPOINT_TOPIC_POOL=str(POOL),
                                  PIPELINE_ROUTER_METRICS_PORT=str(settings.router_metrics_port),
                                  PIPELINE_DISPATCHER_METRICS_PORT=str(settings.dispatcher_metrics_port))
    stages = [stack.start(name, f"pipeline.{name}", env, logs) for name in ("router", "dispatcher", "results", "api")]
    api_url = f"http://127.0.0.1:{settings.api_port}"
    receipts = Receipts(receiver_url)
    try:
        _wait(lambda: _answers(f"{api_url}/healthz"), 120, "the admin API")
        answer = httpx.post(f"{api_url}/v1/subscriptions", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
                            json={"name": "steady", "url": f"{receiver_url}/steady", "event_types": ["steady.tick"]})
        answer.raise_for_status()
        backlog = BacklogWatch(api_url, answer.json()["id"])
        backlog.start()
        with EventPublisher(settings) as publisher:
            steady = Ticker(publisher, [("steady.tick", "steady")], 1 / STEADY_RATE)
            steady.start()
            _wait(lambda: receipts.count() > 0, 120, "the first steady delivery")
            console.print(f"[bold]bench-scale[/bold]: creating {ENDPOINTS:,} endpoints in waves, 100 events/s to a "
                          f"steady one; {POOL:,} endpoint topics made ahead")
            pids = {"broker": broker_pid, **{stage.name: stage.process.pid for stage in stages}} if broker_pid else \
                {stage.name: stage.process.pid for stage in stages}
            waves = run_waves(settings, api_url, receiver_url, publisher, receipts, pids, stages, logs,
                              answer.json()["id"])
            for wave in waves:
                wave["steady_backlog"] = backlog.worst(wave["start"], wave["end"])
            backlog.stopping.set()
            rss = memory(stages, broker_pid)
            kill = kill_one_dispatcher(settings, env, logs, stages, waves, publisher, receipts)
            steady.stopping.set()
        return waves, rss, kill, stack.crashed([s for s in stages if s.name != "dispatcher-2"])
    except BaseException:
        for crash in stack.crashed(stages):  # what the benchmark failed on may be a stage that died
            console.print(f"[red]{crash}[/red]")
        raise
    finally:
        stack.stop(stages)


def _router_catch_up(settings: Settings) -> tuple[float, float]:
    """How many events that matched nothing the router waited on its subscriptions table for, and
    how many seconds in all (webhook_router_catch_up_seconds): it decides one event at a time."""
    samples = {sample.name: sample.value for sample in _samples(settings.router_metrics_port,
                                                                 "webhook_router_catch_up_seconds_")}
    return samples.get("webhook_router_catch_up_seconds_count", 0.0), samples.get("webhook_router_catch_up_seconds_sum", 0.0)


def _dispatcher_held(settings: Settings) -> dict[str, float]:
    """What held up the first dispatcher's event loop so far: how often its timer woke late by more
    than 0.25 s and 1 s, the lateness summed, and the seconds spent in each kind of call into its
    consumer (most of them keep the GIL: see pipeline.metrics.loop_lag)."""
    lag, calls = "webhook_event_loop_lag_seconds", "webhook_dispatcher_consumer_call_seconds_sum"
    lags: dict[str, float] = {}  # its count, its sum, and each bucket by its upper bound
    by_call: dict[str, float] = {}
    for sample in _samples(settings.dispatcher_metrics_port, f"{lag}_", calls):
        if sample.name == calls:
            by_call[sample.labels["call"]] = sample.value
        else:
            lags[sample.labels.get("le", sample.name)] = sample.value
    count = lags.get(f"{lag}_count", 0.0)
    return {"over 0.25 s": count - lags.get("0.25", 0.0), "over 1 s": count - lags.get("1.0", 0.0),
            "late in all": lags.get(f"{lag}_sum", 0.0), **by_call}


def _samples(port: int, *prefixes: str) -> list:  # type: ignore[type-arg]
    """A stage's metric samples whose names start with one of the prefixes, from one scrape."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name.startswith(prefixes)]


def _pooled(api_url: str) -> int:
    return httpx.get(f"{api_url}/healthz", timeout=30).json()["endpoint_topics_ready"]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def report(waves: list[dict], rss: list, kill: dict, crashes: list[str]) -> None:
    table = Table("endpoints", "created at", "first event p50 / p99", "steady p50 / p99 / max", "steady longest gap",
                  "steady backlog in its topic (most, oldest)",
                  title="make bench-scale (one machine, one run): while each wave of endpoints is created")
    for wave in waves:
        steady, backlog = wave["steady"], wave.get("steady_backlog")
        table.add_row(f"{wave['from']:,} → {wave['target']:,}", f"{wave['rate']:,.0f}/s",
                      f"{_ms(wave['first_p50'])} / {_ms(wave['first_p99'])}"
                      + (f" ({wave['first_missing']} missing)" if wave["first_missing"] else ""),
                      f"{_ms(steady['p50'])} / {_ms(steady['p99'])} / {_ms(steady['max'])}", f"{steady['gap_s']:.2f} s",
                      f"{backlog[0]:,}, {backlog[1]:.1f} s" if backlog else "-")
    console.print(table)
    hop_table = Table("endpoints", *(f"{hop}, p50 / p99" for hop in hops.HOPS),
                      "the router waiting for its subscriptions table",
                      title=f"where a new endpoint's first event waited ({HOPS_SAMPLE} endpoints of each wave)")
    for wave in waves:
        if wave.get("first_hops"):
            events, seconds = wave["catch_up"]
            hop_table.add_row(f"{wave['from']:,} → {wave['target']:,}",
                              *(f"{_ms(_pct(times, 0.5))} / {_ms(_pct(times, 0.99))}" for times in wave["first_hops"]),
                              f"{events:,.0f} events, {seconds:,.1f} s in all")
    console.print(hop_table)
    lane_table = Table("endpoints", "an attempt begun every, p50 / p99", "of it the HTTP request, p50 / p99",
                       title="the steady endpoint's one lane (all its events share an ordering key)")
    for wave in waves:
        gaps, requests = wave.get("steady_lane", ([], []))
        if gaps:
            lane_table.add_row(f"{wave['from']:,} → {wave['target']:,}", f"{_ms(_pct(gaps, 0.5))} / {_ms(_pct(gaps, 0.99))}",
                               f"{_ms(_pct(requests, 0.5))} / {_ms(_pct(requests, 0.99))}")
    console.print(lane_table)
    console.print(held_table(waves, kill))
    memory_table = Table("process", "resident MB", title=f"memory with {ENDPOINTS:,} endpoints")
    for name, mb in rss:
        memory_table.add_row(name, f"{mb:,.0f}" if mb is not None else "gone")
    console.print(memory_table)
    kill_table = Table("measure", "value", title="two dispatchers, one killed with SIGKILL (sampled endpoints, 1 event/s each)")
    owners = {"killed": "the killed one's", "survivor": "the survivor's"} if kill["owners_known"] else \
        {"killed": f"waited over {WAITED_S} s (owners not known)", "survivor": "the rest (owners not known)"}
    for owner, label in owners.items():
        found = kill["by_owner"][owner]
        kill_table.add_row(f"{label} sampled endpoints: over {WAITED_S} s without a delivery, of all",
                           f"{found['waited']} of {found['endpoints']}")
        kill_table.add_row(f"{label}: longest gap", f"{found['longest']:.2f} s")
    kill_table.add_row("steady endpoint: longest gap, p99", f"{kill['steady']['gap_s']:.2f} s, {_ms(kill['steady']['p99'])}")
    kill_table.add_row("events lost / endpoints out of order", f"{kill['lost']} / {kill['reordered']}")
    console.print(kill_table)
    console.print("no stage crashed" if not crashes else "[red]crashed:[/red]\n" + "\n".join(crashes))


def held_table(waves: list[dict], kill: dict) -> Table:
    """What held up the first dispatcher's event loop in each wave, and in the survivor after the kill."""
    table = Table("endpoints", "woke over 0.25 s late", "over 1 s", "late in all", "in calls into its consumer (seconds by call)",
                  title="what held up the dispatcher's event loop (a timer every 0.1 s)")
    rows = [(f"{wave['from']:,} → {wave['target']:,}", wave["held"]) for wave in waves]
    for label, held in [*rows, ("the survivor, from the kill on", kill["held"])]:
        calls = sorted(((call, seconds) for call, seconds in held.items() if call not in LAG_COUNTS and seconds >= 0.05),
                       key=lambda found: -found[1])
        table.add_row(label, f"{held['over 0.25 s']:,.0f} times", f"{held['over 1 s']:,.0f}", f"{held['late in all']:,.1f} s",
                      ", ".join(f"{call} {seconds:.1f}" for call, seconds in calls) or "-")
    return table


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 10 else f"{value:,.0f} ms"


if __name__ == "__main__":
    main()
