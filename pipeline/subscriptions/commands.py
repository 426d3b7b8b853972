"""Create, update and delete subscriptions: validation first, nothing written on bad input.

Every change is written as the next version, based on the version it was made from, and the
topic's readers apply it only on top of that version (pipeline.subscriptions.records). With a
`settle` that waits for the view to read its own write and says whether it applied, a change is
confirmed: one that lost to a change made at the same moment is made again on top of it, or,
when the caller asked for a version (If-Match), refused with VersionConflict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pipeline.errors import InvalidInput, ServiceError
from pipeline.models import validated
from pipeline.subscriptions.model import Subscription, SubscriptionFields, check_secret
from pipeline.subscriptions.writer import Position, SubscriptionWriter

log = logging.getLogger(__name__)
MAX_TRIES = 5  # changes made again after losing to others, before giving up


class UnknownSubscription(InvalidInput):
    def __init__(self, subscription_id: str):
        super().__init__("id", f"no subscription {subscription_id!r}")


class VersionConflict(InvalidInput):
    """The subscription is not at the version the caller's change was made from."""

    def __init__(self, subscription_id: str, expected: int, current: int):
        super().__init__("If-Match", f"subscription {subscription_id!r} is at version {current}, not {expected}: "
                                     "read it again and make the change to what it is now")
        self.current = current


class SubscriptionCommands:
    """`lookup` reads the current table: a live one in the API, a snapshot in the CLI.

    `settle(position)` returns once `lookup` has read the record written there, and whether it
    applied; without it, writes are not confirmed (scripts and tests that are the only writer)."""

    def __init__(self, writer: SubscriptionWriter, lookup: Callable[[str], Subscription | None],
                 settle: Callable[[Position], bool] | None = None):
        self.writer = writer
        self.lookup = lookup
        self.settle = settle

    def create(self, fields: dict[str, Any]) -> Subscription:
        subscription_id = fields.pop("id", None)
        accepted = validated(SubscriptionFields, **fields).model_dump(exclude_none=True)
        if subscription_id is None and "partitions" not in accepted:
            subscription_id = self.writer.pooled_id()  # its topic exists already, if one is ready
        if subscription_id is not None:
            accepted["id"] = subscription_id
        subscription = validated(Subscription, **accepted)
        if self.lookup(subscription.id) is not None or not self.commit(subscription):
            raise InvalidInput("id", f"subscription {subscription.id!r} exists already")
        return subscription

    def update(self, subscription_id: str, changes: dict[str, Any],
               expected_version: int | None = None) -> Subscription:
        return self.change(subscription_id, lambda current: current.patched(changes), expected_version)

    def rotate_secret(self, subscription_id: str, overlap: timedelta, new: str | None = None,
                      expected_version: int | None = None) -> Subscription:
        if new is not None:
            try:
                check_secret(new)
            except ValueError as exc:
                raise InvalidInput("secret", str(exc)) from exc
        return self.change(subscription_id, lambda current: current.rotated(overlap, new), expected_version)

    def delete(self, subscription_id: str, expected_version: int | None = None) -> None:
        """A tombstone deletes whatever version is there: If-Match is checked against this view only."""
        _expect(self.require(subscription_id), expected_version)
        self._settle(self.writer.delete(subscription_id))

    def require(self, subscription_id: str) -> Subscription:
        subscription = self.lookup(subscription_id)
        if subscription is None:
            raise UnknownSubscription(subscription_id)
        return subscription

    def change(self, subscription_id: str, make: Callable[[Subscription], Subscription],
               expected_version: int | None = None) -> Subscription:
        """`make(current)` written as the next version; made again on top of a change that won
        meanwhile, unless a version was expected."""
        for _ in range(MAX_TRIES):
            current = _expect(self.require(subscription_id), expected_version)
            changed = make(current)
            if self.commit(changed):
                return changed
            if expected_version is not None:
                raise VersionConflict(subscription_id, expected_version, self.require(subscription_id).version)
        raise ServiceError(f"subscription {subscription_id!r} kept changing: {MAX_TRIES} changes in a row lost "
                           "to others made at the same moment")

    def commit(self, written: Subscription) -> bool:
        """Writes a change; True unless it lost to another one made from the same version."""
        if self._settle(self.writer.put(written)):
            return True
        log.info("a change of subscription %s made from version %s lost to a change made meanwhile",
                 written.id, written.based_on)
        self._restate(written.id)
        return False

    def _restate(self, subscription_id: str) -> None:
        """A lost change is ignored by every reader, but the compacted topic keeps only the last
        record of each key: the current version is written again, so that record is one all apply
        (a deleted subscription needs nothing: no reader applies a change to what is not there)."""
        for _ in range(MAX_TRIES):
            current = self.lookup(subscription_id)
            if current is None or self._settle(self.writer.put(current.restated())):
                return
        log.error("subscription %s: its last record may be a change no reader applies", subscription_id)

    def _settle(self, position: Position) -> bool:
        return self.settle is None or self.settle(position)


def _expect(current: Subscription, expected_version: int | None) -> Subscription:
    if expected_version is not None and current.version != expected_version:
        raise VersionConflict(current.id, expected_version, current.version)
    return current
