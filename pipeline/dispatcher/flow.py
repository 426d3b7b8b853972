"""Flow control per endpoint: a rate limit (aiolimiter), a cap on requests in flight, and a hold
when the endpoint asks us to come back later.

One gate per subscription; a gate is rebuilt when its limits change. One dispatcher owns all of
an endpoint's partitions at a time, so these limits hold for the endpoint as a whole. A hold is
kept apart from the gate, in wall-clock time, so it is committed with the endpoint's offsets and
the next owner keeps it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
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
    def __init__(self, rate_per_s: float | None, max_in_flight: int | None,
                 held_until: Callable[[], float] = lambda: 0.0):
        self.limits = (rate_per_s, max_in_flight)
        self._limiter = limiter(rate_per_s) if rate_per_s else None
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._held_until = held_until  # epoch seconds; nothing is sent before it

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots is not None:
            await self._slots.acquire()
        try:
            # Looked at once the slot is ours: a hold set by the request that had it counts.
            while (wait := self._held_until() - time.time()) > 0:
                await asyncio.sleep(wait)
            if self._limiter is not None:
                await self._limiter.acquire()
            yield
        finally:
            if self._slots is not None:
                self._slots.release()


class Gates:
    def __init__(self) -> None:
        self._gates: dict[str, Gate] = {}
        self._holds: dict[str, float] = {}  # subscription id: epoch seconds

    def for_subscription(self, subscription: Subscription) -> Gate:
        limits = (subscription.rate_limit_per_s, subscription.max_in_flight)
        gate = self._gates.get(subscription.id)
        if gate is None or gate.limits != limits:
            gate = self._gates[subscription.id] = Gate(*limits, held_until=lambda: self._holds.get(subscription.id, 0.0))
        return gate

    def hold(self, subscription_id: str, seconds: float) -> None:
        """The endpoint said when to come back (429 or 503 with Retry-After): until then no lane
        of it sends, not only the one that was told."""
        self.hold_until(subscription_id, time.time() + seconds)

    def hold_until(self, subscription_id: str, until: float) -> None:
        self._holds[subscription_id] = max(self._holds.get(subscription_id, 0.0), until)

    def held_until(self, subscription_id: str) -> float | None:
        """The end of the endpoint's hold, while it lasts."""
        until = self._holds.get(subscription_id)
        if until is not None and until <= time.time():
            del self._holds[subscription_id]
            return None
        return until

    def forget(self, subscription_id: str) -> None:
        self._gates.pop(subscription_id, None)
        self._holds.pop(subscription_id, None)
