"""Every few seconds, the backlog of each endpoint this dispatcher owns, into its metrics.

Measured apart from the deliveries, in one batch of Kafka requests for all the owned endpoints
(see pipeline.kafka.lag); the oldest pending task is fetched only for endpoints with a backlog. A parked endpoint has
fetched everything it had and finished it, so it counts 0 without asking Kafka: with ten
thousand endpoints, most of them quiet, asking for all of them cost a dispatcher a sixth of its CPU.
An endpoint handed to another dispatcher leaves these gauges, so summing them over dispatchers
counts each endpoint once (give or take one interval around a handover).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaException

from pipeline.errors import ServiceError
from pipeline.metrics.dispatcher import DispatcherMetrics
from pipeline.subscriptions.backlog import BacklogReader

log = logging.getLogger(__name__)


class BacklogGauges:
    def __init__(self, reader: BacklogReader, metrics: DispatcherMetrics, owned: Callable[[], list[str]],
                 partitions: Callable[[], tuple[int, int]], interval_s: float,
                 parked: Callable[[], set[str]] = set):
        """owned: the subscriptions whose endpoints this dispatcher owns; partitions: how many endpoint
        partitions it owns, and how many of those are parked; parked: the owned subscriptions whose
        every partition is parked."""
        self.reader = reader
        self.metrics = metrics
        self.owned = owned
        self.parked = parked
        self.partitions = partitions
        self.interval_s = interval_s
        self._exported: set[str] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.measure()
            except (ServiceError, KafkaException) as exc:  # a broker away for a moment: measured next time
                log.warning("measuring endpoint backlogs: %s", exc)
            try:
                await asyncio.wait_for(stopping.wait(), self.interval_s)
            except TimeoutError:
                pass

    async def measure(self) -> None:
        owned, parked = self.partitions()
        self.metrics.partitions.labels("owned").set(owned)
        self.metrics.partitions.labels("parked").set(parked)
        parked = self.parked()
        owned = self.owned()
        backlogs = await asyncio.to_thread(self.reader.read, [s for s in owned if s not in parked])
        now = time.time()
        for subscription_id, backlog in backlogs.items():
            self.metrics.backlog.labels(subscription_id).set(backlog.pending)
            self.metrics.oldest_age.labels(subscription_id).set(backlog.age_s(now) or 0.0)
        quiet = parked.intersection(owned)
        for subscription_id in quiet:
            self.metrics.backlog.labels(subscription_id).set(0)
            self.metrics.oldest_age.labels(subscription_id).set(0.0)
        exported = set(backlogs) | quiet
        for gone in self._exported - exported:
            self.metrics.backlog.remove(gone)
            self.metrics.oldest_age.remove(gone)
        self._exported = exported
