"""`python -m bench.http_publish` (the end of `make bench`): events per second published over
HTTP (POST /v1/events on the admin API), one event per request and in batches, beside the SDK's
rate on the same broker.

The admin API runs as its own process, as `make run` starts it; the client is aiohttp on this
machine. Every request carries an Idempotency-Key, as a careful producer sends one, so the
figures include recording it. At the end the events topic must hold exactly what was accepted.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console
from rich.table import Table

from pipeline import eventloop
from pipeline.config import Settings
from pipeline.devstack.kafka_broker import own_broker
from pipeline.devstack.ports import free_port
from pipeline.devstack.stack import start_stage, stop_children
from pipeline.kafka.admin import ensure_core_topics
from pipeline.kafka.offsets import watermarks
from pipeline.producer import EventPublisher
from pipeline.topics import TopicNames

console = Console()
EVENTS = int(os.environ.get("BENCH_PUBLISH_EVENTS", "20000"))
SINGLE_REQUESTS = int(os.environ.get("BENCH_PUBLISH_REQUESTS", "5000"))
CONCURRENCY = 32
BATCH = 100
BATCH_CONCURRENCY = 4
TOKEN = "bench_publisher"
API_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Rate:
    events: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def per_s(self) -> float:
        return self.events / self.seconds


def envelope(n: int) -> dict:
    """About 1 KB, like the end-to-end bench's events."""
    return {"type": "bench.event", "ordering_key": f"key-{n % 1000}", "data": {"n": n, "pad": "x" * 900}}


def sdk_rate(settings: Settings) -> Rate:
    with EventPublisher(settings) as publisher:
        publisher.publish_fields(type="bench.warmup")
        publisher.flush()
        start = time.perf_counter()
        for n in range(EVENTS):
            body = envelope(n)
            publisher.publish_fields(type=body["type"], ordering_key=body["ordering_key"],
                                     data=json.dumps(body["data"]).encode())
        publisher.flush()
        return Rate(EVENTS, time.perf_counter() - start)


async def http_rate(url: str, bodies: list, concurrency: int, events_per_body: int) -> Rate:
    """POSTs every body, `concurrency` at a time, each with a fresh Idempotency-Key."""
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            sent = time.perf_counter()
            async with session.post(url, json=body, headers=headers | {"Idempotency-Key": uuid.uuid4().hex}) as answer:
                if answer.status != 202:
                    raise RuntimeError(f"POST /v1/events answered {answer.status}: {await answer.text()}")
                await answer.read()
            latencies.append((time.perf_counter() - sent) * 1000)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    latencies.sort()
    return Rate(len(bodies) * events_per_body, seconds, latencies[len(latencies) // 2],
                latencies[int(len(latencies) * 0.99)])


def events_in_topic(settings: Settings) -> int:
    topic = TopicNames.from_settings(settings).events
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "bench-count"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(watermarks(consumer, TopicPartition(topic, p))[1] for p in partitions)
    finally:
        consumer.close()


def api_process(settings: Settings):
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "PIPELINE_TOPIC_PREFIX": settings.topic_prefix,
        "PIPELINE_DATA_DIR": str(settings.data_dir), "PIPELINE_API_PORT": str(settings.api_port),
        "PIPELINE_API_TOKENS": json.dumps({TOKEN: {"tenant": "bench", "scopes": ["publish"]}}),
    }
    return start_stage("pipeline.api", env)


def wait_for_api(base_url: str) -> None:
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", int(base_url.rsplit(":", 1)[1])), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the admin API did not listen at {base_url} within {API_START_TIMEOUT_S:.0f} s")


def measure(settings: Settings) -> dict[str, Rate]:
    ensure_core_topics(settings)
    sdk = sdk_rate(settings)
    base_url = f"http://127.0.0.1:{settings.api_port}"
    api = api_process(settings)
    try:
        wait_for_api(base_url)
        url = f"{base_url}/v1/events"
        eventloop.run(http_rate(url, [envelope(n) for n in range(CONCURRENCY)], CONCURRENCY, 1))  # warm-up
        single = eventloop.run(http_rate(url, [envelope(n) for n in range(SINGLE_REQUESTS)], CONCURRENCY, 1))
        batches = [[envelope(n) for n in range(start, start + BATCH)] for start in range(0, EVENTS, BATCH)]
        batched = eventloop.run(http_rate(url, batches, BATCH_CONCURRENCY, BATCH))
    finally:
        stop_children([api])
    written = events_in_topic(settings)
    expected = 1 + EVENTS + CONCURRENCY + single.events + batched.events
    if written != expected:
        raise RuntimeError(f"the events topic holds {written} events; {expected} were accepted")
    return {"sdk": sdk, "single": single, "batched": batched}


def report(rates: dict[str, Rate]) -> Table:
    table = Table("publishing", "events/s", "request p50 / p99 (ms)", title="publish throughput (one machine, one run)")
    table.add_row("SDK (EventPublisher, acknowledged by flush)", f"{rates['sdk'].per_s:,.0f}", "")
    for name, label in (("single", f"POST /v1/events, one event a request, {CONCURRENCY} at a time"),
                        ("batched", f"POST /v1/events, {BATCH} events a request, {BATCH_CONCURRENCY} at a time")):
        rate = rates[name]
        table.add_row(label, f"{rate.per_s:,.0f}", f"{rate.p50_ms:,.1f} / {rate.p99_ms:,.1f}")
    return table


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir, own_broker(Path(data_dir)) as broker:
        settings = Settings().model_copy(update={
            "topic_prefix": f"benchpub{uuid.uuid4().hex[:6]}.", "data_dir": Path(data_dir), "api_port": free_port(),
            "kafka_bootstrap_servers": broker.bootstrap})
        console.print(f"[bold]publishing[/bold]: {EVENTS} events through the SDK, {SINGLE_REQUESTS} requests "
                      f"of one event and {EVENTS // BATCH} of {BATCH} over HTTP")
        rates = measure(settings)
    console.print(report(rates))


if __name__ == "__main__":
    main()
