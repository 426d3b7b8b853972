"""How late the event loop gets round to a timer: the time it was held by something else.

A confluent-kafka consumer's assign, unassign, pause and resume keep Python's GIL while librdkafka
does the work (confluent-kafka-python issue 1023), so they hold up the whole process, event loop
included, even when called on a thread of their own: with thousands of partitions assigned, one
call took from a few milliseconds to seconds. Every delivery in flight waits meanwhile. This shows
how often, and for how long, it happens.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Histogram

LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TICK_S = 0.1


class LoopLag:
    def __init__(self, registry: CollectorRegistry, tick_s: float = TICK_S):
        self.tick_s = tick_s
        self.lag = Histogram("webhook_event_loop_lag_seconds", f"How much later than asked the event loop woke "
                             f"a timer set every {tick_s} s: how long something else held it",
                             buckets=LAG_BUCKETS_S, registry=registry)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.tick_s
            await asyncio.sleep(self.tick_s)
            self.lag.observe(max(0.0, loop.time() - asked))
