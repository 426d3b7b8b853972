"""Turning an endpoint off: after 410 Gone, or after it has only failed for a long while.

The subscription is set inactive with the reason in the compacted topic (the router keeps
routing to it, so its backlog grows in its endpoint topic and drains in order once it is
enabled again, unlike a subscription a user paused), and an operator event is published, so
operators can subscribe to `pipeline.subscription.disabled` like to any other event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta

from pipeline.config import Settings
from pipeline.models import utcnow
from pipeline.producer import EventPublisher
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.subscriptions.writer import SubscriptionWriter

log = logging.getLogger(__name__)
DISABLED_EVENT = "pipeline.subscription.disabled"


class FailureStreaks:
    """Per subscription, when its current run of failures began and how long it is."""

    def __init__(self, window: timedelta, min_failures: int):
        self.window = window
        self.min_failures = min_failures
        self._streaks: dict[str, tuple[datetime, int]] = {}

    def succeeded(self, subscription_id: str) -> None:
        self._streaks.pop(subscription_id, None)

    def of(self, subscription_id: str) -> tuple[datetime, int] | None:
        """When the endpoint's current run of failures began and how long it is; None without one."""
        return self._streaks.get(subscription_id)

    def learn(self, subscription_id: str, began: datetime, failures: int) -> None:
        """A streak the endpoint's previous owner committed; the longer one wins."""
        current = self._streaks.get(subscription_id)
        if current is None or current[1] < failures:
            self._streaks[subscription_id] = (began, failures)

    def forget(self, subscription_id: str) -> None:
        self._streaks.pop(subscription_id, None)

    def failed(self, subscription_id: str, now: datetime | None = None) -> bool:
        """Records a failure; True when only failures came for the whole window."""
        moment = now or utcnow()
        began, count = self._streaks.get(subscription_id, (moment, 0))
        self._streaks[subscription_id] = (began, count + 1)
        return moment - began >= self.window and count + 1 >= self.min_failures


class Disabler:
    """Disables a subscription as of the version its failing delivery was made with: a change made
    meanwhile (a rotated secret, a new URL) wins over the disabling, and the next delivery, made
    with that change, decides again. Only a disabling that took effect is announced."""

    def __init__(self, settings: Settings, table: SubscriptionTable):
        self.table = table
        self._commands = SubscriptionCommands(SubscriptionWriter(settings), table.get, table.settled_blocking)
        self._publisher = EventPublisher(settings)

    async def disable(self, subscription: Subscription, reason: str) -> bool:
        """True when this call disabled it."""
        current = self.table.get(subscription.id)
        if current is None or not current.active or current.version != subscription.version:
            return False  # deleted, paused or disabled by someone else, or changed since that delivery
        disabled = subscription.disabled(reason)
        if not await asyncio.to_thread(self._commands.commit, disabled):
            log.info("not disabling subscription %s: it changed after version %d failed", subscription.id,
                     subscription.version)
            return False
        await asyncio.to_thread(self._announce, disabled, reason)
        log.warning("disabled subscription %s (%s): %s", subscription.id, subscription.url, reason)
        return True

    def _announce(self, disabled: Subscription, reason: str) -> None:
        data = {"subscription_id": disabled.id, "name": disabled.name, "url": disabled.url, "reason": reason}
        self._publisher.publish_fields(type=DISABLED_EVENT, source="dispatcher", tenant=disabled.tenant,
                                       ordering_key=disabled.id, data=json.dumps(data).encode())
        self._publisher.flush()
