"""`python -m bench.matching`: the router's matching and the subscriptions table at 10, 10,000 and
100,000 subscriptions: time to decide for one event, memory of the table and of the index, and
the time to decode a subscription record (what a stage pays per subscription when it starts).

Each subscription wants a type of its own (`scale.eN`), one in a hundred a wildcard
(`scale.*`-style on a group) and one in a thousand has a content filter, as a large tenant's
endpoints might. The ratio of the time per event at N subscriptions to the time at 10 is the
figure to read: matching looks at an event's candidates only, not at every subscription.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.config import Settings
from pipeline.models import Event
from pipeline.router.matching import Matcher
from pipeline.subscriptions.avro import from_avro, to_avro
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import load_box

console = Console()
SIZES = [int(n) for n in os.environ.get("BENCH_MATCHING_SIZES", "10,10000,100000").split(",")]
EVENTS = 20_000


def subscription(n: int) -> Subscription:
    types = [f"group{n % 100}.*"] if n % 100 == 0 else [f"scale.e{n}"]
    content_filter = {"data.amount": {"$gte": 100}} if n % 1000 == 0 else None
    return Subscription(name=f"endpoint {n}", url=f"https://endpoint-{n}.example.com/hooks",
                        event_types=types, filter=content_filter, tenant=f"tenant{n % 50}")


def measure(count: int, box) -> dict[str, float]:  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.start()
    rows = {s.id: s for s in map(subscription, range(count))}
    table_bytes = tracemalloc.get_traced_memory()[0]
    matcher = Matcher(rows.values())
    index_bytes = tracemalloc.get_traced_memory()[0] - table_bytes
    tracemalloc.stop()
    events = [Event(type=f"scale.e{n % count}", tenant=f"tenant{n % count % 50}", data=b'{"amount": 120}')
              for n in range(EVENTS)]
    started = time.perf_counter()
    matched = sum(len(matcher.decide(event).matched) for event in events)
    per_event_us = (time.perf_counter() - started) / EVENTS * 1e6
    record = to_avro(next(iter(rows.values())), box)
    started = time.perf_counter()
    for _ in range(2000):
        from_avro(record, box)
    decode_us = (time.perf_counter() - started) / 2000 * 1e6
    return {"count": count, "per_event_us": per_event_us, "matched": matched / EVENTS,
            "table_mb": table_bytes / 2**20, "index_mb": index_bytes / 2**20, "decode_us": decode_us}


def main() -> None:
    box = load_box(Settings(data_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "bench-matching"))
    results = [measure(count, box) for count in SIZES]
    base = results[0]["per_event_us"]
    table = Table("subscriptions", "µs per event", "ratio to the first", "table MB", "index MB",
                  "decode µs per record", "load time", title="the router's matching (one run)")
    for result in results:
        table.add_row(f"{result['count']:,}", f"{result['per_event_us']:.1f}", f"{result['per_event_us'] / base:.2f}",
                      f"{result['table_mb']:.1f}", f"{result['index_mb']:.1f}", f"{result['decode_us']:.0f}",
                      f"{result['decode_us'] * result['count'] / 1e6:.1f} s")
    console.print(table)


if __name__ == "__main__":
    main()
