"""Subscriptions indexed by the event types they want, so matching an event looks at its
candidates only, not at every subscription: exact types, `prefix.*` wildcards, and `*`.

The index is kept up to date one subscription at a time as the table changes, so ten thousand
subscriptions and a steady stream of new ones cost the router no rebuilds.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.subscriptions.model import Subscription

EVERYTHING = "*"


class TypeIndex:
    def __init__(self, subscriptions: Iterable[Subscription] = ()):
        self._exact: dict[str, dict[str, Subscription]] = {}
        self._prefixes: dict[str, dict[str, Subscription]] = {}  # keyed with the dot: "user."
        self._everything: dict[str, Subscription] = {}
        self._filed: dict[str, set[str]] = {}  # subscription id: the patterns it is filed under
        for subscription in subscriptions:
            self.add(subscription)

    def add(self, subscription: Subscription) -> None:
        """Files the subscription under its patterns, in place of an earlier version of it."""
        self.remove(subscription.id)
        patterns = set(subscription.event_types)
        for pattern in patterns:
            self._bucket(pattern, create=True)[subscription.id] = subscription  # type: ignore[index]
        self._filed[subscription.id] = patterns

    def remove(self, subscription_id: str) -> None:
        for pattern in self._filed.pop(subscription_id, ()):
            bucket = self._bucket(pattern)
            if bucket is not None:
                bucket.pop(subscription_id, None)
                if not bucket and pattern != EVERYTHING:
                    self._drop_bucket(pattern)

    def candidates(self, event_type: str) -> list[Subscription]:
        """Every subscription one of whose patterns matches the type, each once."""
        found = dict(self._everything)
        found.update(self._exact.get(event_type, {}))
        position = event_type.find(".")
        while position != -1:
            found.update(self._prefixes.get(event_type[: position + 1], {}))
            position = event_type.find(".", position + 1)
        return list(found.values())

    def __len__(self) -> int:
        return len(self._filed)

    def _bucket(self, pattern: str, create: bool = False) -> dict[str, Subscription] | None:
        if pattern == EVERYTHING:
            return self._everything
        shelf, key = (self._prefixes, pattern[:-1]) if pattern.endswith(".*") else (self._exact, pattern)
        return shelf.setdefault(key, {}) if create else shelf.get(key)

    def _drop_bucket(self, pattern: str) -> None:
        if pattern.endswith(".*"):
            self._prefixes.pop(pattern[:-1], None)
        else:
            self._exact.pop(pattern, None)
