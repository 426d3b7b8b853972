"""Doorbells: a tiny record, keyed by subscription id, saying tasks were just written to its
endpoint topic, so the dispatcher that parked that quiet partition fetches it again at once
(pipeline.dispatcher.parking). Every writer of endpoint topics rings: the router at most once a
second per endpoint (a busy endpoint is never parked, and a parked one is woken by the first
ring), the rarer writers (test sends, resends, replays, redrives, delayed retries) every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pipeline.topics import TopicNames

Write = Callable[[str, bytes | None, bytes], None]  # topic, key, value
RING_EVERY_S = 1.0


def ring(write: Write, names: TopicNames, subscription_id: str) -> None:
    write(names.dispatcher_wakeups, subscription_id.encode(), b"")


class Doorbells:
    """Rings for the router, at most once per RING_EVERY_S per endpoint."""

    def __init__(self, write: Write, names: TopicNames, every_s: float = RING_EVERY_S):
        self._write = write
        self._names = names
        self._every_s = every_s
        self._last: dict[str, float] = {}

    def ring(self, subscription_id: str) -> None:
        now = time.monotonic()
        if now - self._last.get(subscription_id, -self._every_s) >= self._every_s:
            self._last[subscription_id] = now
            ring(self._write, self._names, subscription_id)
