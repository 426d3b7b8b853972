"""The event loop's lag: a stretch in which something held the loop shows as a late timer."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry

from pipeline.metrics.loop_lag import LoopLag
from tests.polling import until


def observed(registry: CollectorRegistry) -> tuple[float, float]:
    """How many lags were observed, and their sum in seconds."""
    return (registry.get_sample_value("webhook_event_loop_lag_seconds_count") or 0.0,
            registry.get_sample_value("webhook_event_loop_lag_seconds_sum") or 0.0)


async def test_a_loop_held_for_a_while_shows_as_a_late_timer() -> None:
    registry = CollectorRegistry()
    meter = asyncio.create_task(LoopLag(registry, tick_s=0.05).run())
    try:
        await until(lambda: observed(registry)[0] >= 1)
        count, lag_s = observed(registry)
        time.sleep(0.3)  # holds the loop, as a call keeping the GIL does: the timer armed before it waits
        await until(lambda: observed(registry)[0] > count)
        # The timer was armed for at most one tick after the hold began, and woke after it ended.
        assert observed(registry)[1] - lag_s >= 0.3 - 0.05 - 0.01
    finally:
        meter.cancel()
