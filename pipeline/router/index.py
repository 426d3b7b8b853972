"""Subscriptions indexed by the event types they want, so matching an event looks at its
candidates only, not at every subscription: exact types, `prefix.*` wildcards, and `*`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pipeline.subscriptions.model import Subscription


class TypeIndex:
    def __init__(self, subscriptions: Iterable[Subscription]):
        self._exact: dict[str, list[Subscription]] = defaultdict(list)
        self._prefixes: dict[str, list[Subscription]] = defaultdict(list)
        self._everything: list[Subscription] = []
        for subscription in subscriptions:
            for pattern in set(subscription.event_types):
                self._add(pattern, subscription)

    def _add(self, pattern: str, subscription: Subscription) -> None:
        if pattern == "*":
            self._everything.append(subscription)
        elif pattern.endswith(".*"):
            self._prefixes[pattern[:-1]].append(subscription)  # keeps the dot: "user."
        else:
            self._exact[pattern].append(subscription)

    def candidates(self, event_type: str) -> list[Subscription]:
        """Every subscription one of whose patterns matches the type, each once."""
        found = [*self._everything, *self._exact.get(event_type, ())]
        position = event_type.find(".")
        while position != -1:
            found.extend(self._prefixes.get(event_type[: position + 1], ()))
            position = event_type.find(".", position + 1)
        unique = {subscription.id: subscription for subscription in found}
        return list(unique.values())
