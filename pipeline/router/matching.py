"""Which subscriptions want an event, and why an event went nowhere: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.models import Event
from pipeline.router.index import TypeIndex
from pipeline.subscriptions.model import Subscription


def type_matches(pattern: str, event_type: str) -> bool:
    """`*` matches every type, `user.*` every type under `user.`, anything else exactly."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


@dataclass(frozen=True)
class Decision:
    matched: list[Subscription]
    reason: str | None  # why nothing matched: paused, filtered or no_match; None when routed


class Matcher:
    """Decides for events against the subscriptions: indexed by type, filters compiled once, both
    kept up to date one subscription at a time."""

    def __init__(self, subscriptions: Iterable[Subscription] = ()):
        self.index = TypeIndex()
        self._filters: dict[str, Any] = {}
        for subscription in subscriptions:
            self.put(subscription)

    def put(self, subscription: Subscription) -> None:
        """Adds a subscription, or replaces the earlier version of it."""
        self.index.add(subscription)
        if subscription.filter is None:
            self._filters.pop(subscription.id, None)
        else:
            self._filters[subscription.id] = _compile(subscription.filter)

    def remove(self, subscription_id: str) -> None:
        self.index.remove(subscription_id)
        self._filters.pop(subscription_id, None)

    def decide(self, event: Event) -> Decision:
        matched: list[Subscription] = []
        paused = filtered = False
        document: dict[str, Any] | None = None
        for subscription in self.index.candidates(event.type):
            if subscription.tenant and subscription.tenant != event.tenant:
                continue
            if subscription.paused:  # a disabled one is still routed to: its topic keeps the backlog
                paused = True
                continue
            if subscription.sources and event.source not in subscription.sources:
                filtered = True
                continue
            content_filter = self._filters.get(subscription.id)
            if content_filter is not None:
                document = document if document is not None else _document(event)
                if not content_filter.matches(document):
                    filtered = True
                    continue
            matched.append(subscription)
        if matched:
            return Decision(matched, None)
        return Decision([], "paused" if paused else "filtered" if filtered else "no_match")


def _compile(rule: dict[str, Any]) -> Any:
    from pipeline.router.content_filter import compile_filter

    return compile_filter(rule)


def _document(event: Event) -> dict[str, Any]:
    from pipeline.documents import event_document

    return event_document(event)


def decide(subscriptions: Iterable[Subscription], event: Event) -> Decision:
    return Matcher(subscriptions).decide(event)


def matching(subscriptions: Iterable[Subscription], event: Event) -> list[Subscription]:
    return decide(subscriptions, event).matched
