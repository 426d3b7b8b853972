"""Create, update and delete subscriptions: validation first, nothing written on bad input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pipeline.errors import InvalidInput
from pipeline.models import validated
from pipeline.subscriptions.model import Subscription, SubscriptionFields, check_secret
from pipeline.subscriptions.writer import SubscriptionWriter


class UnknownSubscription(InvalidInput):
    def __init__(self, subscription_id: str):
        super().__init__("id", f"no subscription {subscription_id!r}")


class SubscriptionCommands:
    """`lookup` reads the current table: a live one in the API, a snapshot in the CLI."""

    def __init__(self, writer: SubscriptionWriter, lookup: Callable[[str], Subscription | None]):
        self.writer = writer
        self.lookup = lookup

    def create(self, fields: dict[str, Any]) -> Subscription:
        subscription_id = fields.pop("id", None)
        accepted = validated(SubscriptionFields, **fields).model_dump(exclude_none=True)
        if subscription_id is not None:
            accepted["id"] = subscription_id
        subscription = validated(Subscription, **accepted)
        if self.lookup(subscription.id) is not None:
            raise InvalidInput("id", f"subscription {subscription.id!r} exists already")
        self.writer.put(subscription)
        return subscription

    def update(self, subscription_id: str, changes: dict[str, Any]) -> Subscription:
        updated = self.require(subscription_id).patched(changes)
        self.writer.put(updated)
        return updated

    def rotate_secret(self, subscription_id: str, overlap: timedelta, new: str | None = None) -> Subscription:
        if new is not None:
            try:
                check_secret(new)
            except ValueError as exc:
                raise InvalidInput("secret", str(exc)) from exc
        rotated = self.require(subscription_id).rotated(overlap, new)
        self.writer.put(rotated)
        return rotated

    def delete(self, subscription_id: str) -> None:
        self.require(subscription_id)
        self.writer.delete(subscription_id)

    def require(self, subscription_id: str) -> Subscription:
        subscription = self.lookup(subscription_id)
        if subscription is None:
            raise UnknownSubscription(subscription_id)
        return subscription
