"""Delivers one task until it succeeds, its retry schedule is spent, or its subscription is gone.

Retries wait in place, inside the task's lane, so later messages of the same key never
overtake it; other keys and other endpoints keep flowing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipeline.dispatcher.attempt import attempt_delivery
from pipeline.dispatcher.http import HttpTransport
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.retry import RetrySchedule
from pipeline.errors import CodecError
from pipeline.models import DeliveryTask
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.table import SubscriptionTable

log = logging.getLogger(__name__)
INACTIVE_RECHECK_S = 1.0
UNKNOWN_SUBSCRIPTION_GRACE_S = 10.0


class Deliverer:
    def __init__(self, *, table: SubscriptionTable, transport: HttpTransport, outbox: Outbox,
                 schedule: RetrySchedule, timeout_s: float):
        self.table = table
        self.transport = transport
        self.outbox = outbox
        self.schedule = schedule
        self.timeout_s = timeout_s

    async def deliver(self, record: Any) -> None:
        try:
            task = DeliveryTask.from_avro(record.value)
        except (CodecError, ValueError) as exc:
            self.outbox.dead_letter(record.key, record.value or b"", f"undecodable task: {exc}", record.topic)
            return
        attempt = 1
        while True:
            subscription = await self._deliverable_subscription(task.subscription_id)
            if subscription is None:
                log.info("dropping %s: subscription %s was deleted", task.event.id, task.subscription_id)
                return
            outcome = await attempt_delivery(self.transport, subscription, task, attempt, self.timeout_s)
            self.outbox.attempt(outcome.record)
            if outcome.succeeded:
                return
            delay = self.schedule.delay_before(attempt + 1)
            if delay is None:
                reason = f"retry schedule spent after {attempt} attempts: {outcome.record['error']}"
                self.outbox.dead_letter(record.key, record.value, reason, record.topic)
                return
            await asyncio.sleep(delay)
            attempt += 1

    async def _deliverable_subscription(self, subscription_id: str) -> Subscription | None:
        """Waits while the subscription is paused, keeping its backlog; None once it is deleted."""
        unknown_since = asyncio.get_running_loop().time()
        while True:
            subscription = self.table.get(subscription_id)
            if subscription is not None and subscription.active:
                return subscription
            if subscription is None:
                # The router saw it, so this table may only lag behind: give it a moment.
                if asyncio.get_running_loop().time() - unknown_since > UNKNOWN_SUBSCRIPTION_GRACE_S:
                    return None
                await asyncio.sleep(0.2)
            else:
                await asyncio.sleep(INACTIVE_RECHECK_S)
