"""Which subscriptions want an event, and why an event went nowhere: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.models import Event
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
    reason: str | None  # why nothing matched: paused or no_match; None when routed


def decide(subscriptions: Iterable[Subscription], event: Event) -> Decision:
    matched: list[Subscription] = []
    paused = False
    for subscription in subscriptions:
        if subscription.tenant and subscription.tenant != event.tenant:
            continue
        if not any(type_matches(pattern, event.type) for pattern in subscription.event_types):
            continue
        if not subscription.active:
            paused = True
            continue
        matched.append(subscription)
    if matched:
        return Decision(matched, None)
    return Decision([], "paused" if paused else "no_match")


def matching(subscriptions: Iterable[Subscription], event: Event) -> list[Subscription]:
    return decide(subscriptions, event).matched
