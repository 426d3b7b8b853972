"""Which subscriptions want an event: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.models import Event, Subscription


def type_matches(pattern: str, event_type: str) -> bool:
    """`*` matches every type, `user.*` every type under `user.`, anything else exactly."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def wants(subscription: Subscription, event: Event) -> bool:
    if not subscription.active:
        return False
    if subscription.tenant and subscription.tenant != event.tenant:
        return False
    return any(type_matches(pattern, event.type) for pattern in subscription.event_types)


def matching(subscriptions: Iterable[Subscription], event: Event) -> list[Subscription]:
    return [subscription for subscription in subscriptions if wants(subscription, event)]
