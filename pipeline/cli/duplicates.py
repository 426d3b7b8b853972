"""When a new subscription would repeat an existing one: the same events sent to the same URL.

Two such subscriptions deliver every event twice, which is almost always a create run twice
by mistake. Name, secret, format and flow settings do not matter here; which events go where does.
"""

from __future__ import annotations

from typing import Any, Protocol


class DeliveryTarget(Protocol):
    tenant: str
    url: str
    event_types: list[str]
    sources: list[str]
    filter: dict[str, Any] | None


def same_deliveries(wanted: DeliveryTarget, existing: DeliveryTarget) -> bool:
    return _key(wanted) == _key(existing)


def _key(target: DeliveryTarget) -> tuple[Any, ...]:
    # Order does not change which events match: ["a", "b"] and ["b", "a"] are the same subscription.
    return (target.tenant, target.url, frozenset(target.event_types), frozenset(target.sources),
            _canonical(target.filter))


def _canonical(value: Any) -> Any:
    """A hashable form of a JSON value, with object keys in a fixed order."""
    if isinstance(value, dict):
        return tuple(sorted((key, _canonical(item)) for key, item in value.items()))
    if isinstance(value, list):
        return tuple(_canonical(item) for item in value)
    return value
