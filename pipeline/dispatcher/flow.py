"""Flow control per endpoint: a rate limit (aiolimiter), a cap on requests in flight, and a hold
when the endpoint asks us to come back later.

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
        self._held_until = 0.0  # loop time; nothing is sent before it

    def hold(self, seconds: float) -> None:
        """The endpoint said when to come back (429 or 503 with Retry-After): until then no lane
        of it sends, not only the one that was told."""
        until = asyncio.get_running_loop().time() + seconds
        self._held_until = max(self._held_until, until)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        while (wait := self._held_until - loop.time()) > 0:
            await asyncio.sleep(wait)
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
