"""A subscription's backlog: the tasks in its endpoint topic the dispatchers have not finished.

Pending is the endpoint topic's end offset minus the dispatchers' committed offset, summed over its
partitions; the oldest pending task is the one at the committed offset (the lowest unfinished one),
and its age is how long ago the router wrote it. A paused or disabled endpoint, or one that fails,
keeps its tasks queued there: its backlog grows, and shrinks back to 0 once they are delivered.
Offsets are committed every half second or so, so a finished task may count for that long.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pipeline.config import Settings
from pipeline.kafka.admin import admin_client
from pipeline.kafka.lag import GroupLag
from pipeline.topics import TopicNames


def dispatcher_group(settings: Settings) -> str:
    """The group the dispatchers commit the endpoint topics' offsets in (see dispatcher.consumer)."""
    return f"{settings.topic_prefix}dispatcher"


@dataclass(frozen=True)
class Backlog:
    subscription_id: str
    pending: int
    oldest_pending_ms: int | None  # when the oldest pending task was written; None when nothing is pending

    def age_s(self, now_s: float | None = None) -> float | None:
        if self.oldest_pending_ms is None:
            return None
        return max(0.0, (time.time() if now_s is None else now_s) - self.oldest_pending_ms / 1000)

    def view(self, now_s: float | None = None) -> dict[str, Any]:
        oldest = self.oldest_pending_ms
        age = self.age_s(now_s)
        return {"subscription_id": self.subscription_id, "pending": self.pending,
                "oldest_pending_at": None if oldest is None else
                datetime.fromtimestamp(oldest / 1000, timezone.utc).isoformat(),
                "oldest_pending_age_s": None if age is None else round(age, 3)}


class BacklogReader:
    def __init__(self, settings: Settings):
        self.names = TopicNames.from_settings(settings)
        self._lag = GroupLag(admin_client(settings.kafka_bootstrap_servers), settings.kafka_bootstrap_servers,
                             dispatcher_group(settings))

    def read(self, subscription_ids: Iterable[str], *, oldest: bool = True) -> dict[str, Backlog]:
        """Each subscription's backlog, asked of Kafka in one batch; a subscription whose topic is
        missing counts as empty. Blocking: call it from a thread in an event loop."""
        ids = list(subscription_ids)
        if not ids:
            return {}
        lags = self._lag.read((self.names.endpoint(s) for s in ids), oldest=oldest)
        backlogs = {}
        for subscription_id in ids:
            lag = lags.get(self.names.endpoint(subscription_id))
            backlogs[subscription_id] = Backlog(subscription_id, lag.pending if lag else 0,
                                                lag.oldest_ms if lag else None)
        return backlogs
