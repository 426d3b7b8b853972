"""Flow control per endpoint: a rate limit (aiolimiter) and a cap on requests in flight.

One gate per subscription in each dispatcher process; a gate is rebuilt when its limits change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter

from pipeline.subscriptions.model import Subscription


def limiter(rate_per_s: float) -> AsyncLimiter:
    """A leaky bucket of rate_per_s, bursting up to one second's worth but never below one request.

    aiolimiter refuses to acquire more than max_rate at once, so a rate under one per second
    becomes one request per 1/rate seconds rather than a fraction of a request per second.
    """
    if rate_per_s >= 1:
        return AsyncLimiter(rate_per_s, 1)
    return AsyncLimiter(1, 1 / rate_per_s)


class Gate:
    def __init__(self, rate_per_s: float | None, max_in_flight: int | None):
        self.limits = (rate_per_s, max_in_flight)
        self._limiter = limiter(rate_per_s) if rate_per_s else None
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
