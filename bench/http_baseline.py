"""The raw HTTP client baseline: how fast each transport alone can POST to a local receiver.

`python -m bench.http_baseline` starts the receiver in a process of its own, so server and
client do not share one GIL, and compares aiohttp and httpx. The full pipeline benchmark
imports `raw_post_rate` and reports its own rate as a ratio to this one. Traffic goes to
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.table import Table

from pipeline import eventloop
from pipeline.devstack.ports import free_port
from pipeline.dispatcher.http import HttpTransport, make_transport
from pipeline.models import new_secret
from pipeline.signing import webhook_headers

TRANSPORTS = ("aiohttp", "httpx")
REQUEST_TIMEOUT_S = 30.0
RECEIVER_START_TIMEOUT_S = 30.0


LOCAL_NETWORKS = ["127.0.0.0/8"]  # the receiver runs here; the SSRF guard stays on and allows it


@dataclass(frozen=True)
class RateResult:
    requests: int
    seconds: float
    rate_per_s: float
    p50_ms: float
    p99_ms: float


async def raw_post_rate(transport_name: str, url: str, requests: int, concurrency: int,
                        body_size: int = 1024) -> RateResult:
    """POSTs `requests` signed bodies of `body_size` bytes, `concurrency` at a time.

    A first round of `concurrency` requests opens the connections and is not counted: the
    dispatcher keeps its pool warm, so the steady state is the figure to compare.
    """
    body = b"x" * body_size
    # Signed once, outside the clock: the headers weigh as much as a real delivery's.
    headers = {"content-type": "application/json"} | webhook_headers([new_secret()], "msg_bench", int(time.time()), body)
    transport = make_transport(transport_name, max_connections=concurrency, allowed_networks=LOCAL_NETWORKS,
                               allow_http=True, max_connections_per_host=concurrency)  # type: ignore[arg-type]
    try:
        await _post_many(transport, url, headers, body, min(concurrency, requests), concurrency)
        started = time.perf_counter()
        latencies_s = await _post_many(transport, url, headers, body, requests, concurrency)
        seconds = time.perf_counter() - started
    finally:
        await transport.close()
    latencies_s.sort()
    return RateResult(requests=requests, seconds=seconds, rate_per_s=requests / seconds,
                      p50_ms=_percentile(latencies_s, 0.50) * 1000, p99_ms=_percentile(latencies_s, 0.99) * 1000)


async def _post_many(transport: HttpTransport, url: str, headers: dict[str, str], body: bytes,
                     requests: int, concurrency: int) -> list[float]:
    remaining = iter(range(requests))
    latencies_s: list[float] = []

    async def worker() -> None:
        for _ in remaining:  # one shared iterator: workers take the next request as they free up
            started = time.perf_counter()
            response = await transport.send("POST", url, headers, body, REQUEST_TIMEOUT_S)
            latencies_s.append(time.perf_counter() - started)
            if not 200 <= response.status < 300:
                raise RuntimeError(f"the receiver answered {response.status} to {url}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies_s


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


@contextmanager
def receiver_process(*options: str) -> Iterator[str]:
    """A quiet receiver in its own process; yields its base URL once it answers."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "pipeline.receiver", "--port", str(port), "--quiet", *options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_answering(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(10)


def _wait_until_answering(base_url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + RECEIVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the receiver exited: {process.stderr.read().decode(errors='replace')}")
        if received_count(base_url) is not None:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the receiver at {base_url} did not answer within {RECEIVER_START_TIMEOUT_S:.0f} s")


# One client for every poll: a new one per call builds an SSL context each time, which costs
# milliseconds of CPU that the pipeline being measured would lose.
_POLLER = httpx.Client(timeout=2)


def received_count(base_url: str) -> int | None:
    try:
        return _POLLER.get(f"{base_url}/_count").json()["count"]
    except httpx.HTTPError:
        return None


def main() -> None:
    requests = int(os.environ.get("BENCH_RAW_REQUESTS", "5000"))
    concurrency = int(os.environ.get("BENCH_RAW_CONCURRENCY", "50"))
    console = Console()
    eventloop.use_fastest_loop()
    loop_name = type(asyncio.get_event_loop_policy()).__module__.split(".")[0]  # uvloop or asyncio
    table = Table("client", "requests", "seconds", "POST/s", "p50 ms", "p99 ms",
                  title=f"raw POST of 1 KiB to a local receiver, concurrency {concurrency}, {loop_name} (one run)")
    with receiver_process() as base_url:
        for name in TRANSPORTS:
            before = received_count(base_url) or 0
            # The loop the dispatcher runs on, so the two rates compare like with like.
            result = eventloop.run(raw_post_rate(name, f"{base_url}/raw/{name}", requests, concurrency))
            arrived = (received_count(base_url) or 0) - before
            if arrived != requests + min(concurrency, requests):  # the warm-up round arrives too
                raise RuntimeError(f"{name}: the receiver counted {arrived} requests")
            table.add_row(name, f"{result.requests:,}", f"{result.seconds:.2f}", f"{result.rate_per_s:,.0f}",
                          f"{result.p50_ms:.1f}", f"{result.p99_ms:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
