"""Flow control per endpoint: a rate limit (aiolimiter) and a cap on requests in flight.

One gate per subscription in each dispatcher process; a gate is rebuilt when its limits change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter

from pipeline.subscriptions.model import Subscription


class Gate:
    def __init__(self, rate_per_s: float | None, max_in_flight: int | None):
        self.limits = (rate_per_s, max_in_flight)
        self._limiter = AsyncLimiter(rate_per_s, 1) if rate_per_s else None
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots is not None:
            await self._slots.acquire()
        try:
            if self._limiter is not None:
                await self._limiter.acquire()
            yield
        finally:
            if self._slots is not None:
                self._slots.release()


class Gates:
    def __init__(self) -> None:
        self._gates: dict[str, Gate] = {}

    def for_subscription(self, subscription: Subscription) -> Gate:
        limits = (subscription.rate_limit_per_s, subscription.max_in_flight)
        gate = self._gates.get(subscription.id)
        if gate is None or gate.limits != limits:
            gate = self._gates[subscription.id] = Gate(*limits)
        return gate
