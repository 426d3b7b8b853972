"""Cursor pagination of subscription lists, in creation order, as Stripe and Svix page theirs.

The cursor is opaque to callers: the creation time and id of the last item of the page, so a
page stays correct while subscriptions are created or deleted between requests. Pages are cut
from a list sorted once per version of the table, so the ten-thousandth page costs what the first does.
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pipeline.errors import InvalidInput
from pipeline.subscriptions.model import Subscription

MAX_LIMIT = 1000
Position = tuple[int, str]  # created_at in milliseconds, id


@dataclass(frozen=True)
class Page:
    items: list[Subscription]
    next_cursor: str | None

    def view(self) -> dict:
        return {"data": [item.public_view() for item in self.items], "has_more": self.next_cursor is not None,
                "next_cursor": self.next_cursor}


class SubscriptionPages:
    def __init__(self) -> None:
        self._version = -1
        self._positions: list[Position] = []
        self._items: list[Subscription] = []

    def page(self, version: int, subscriptions: Callable[[], Iterable[Subscription]], *, limit: int,
             cursor: str | None, keep: Callable[[Subscription], bool]) -> Page:
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput("limit", f"must be between 1 and {MAX_LIMIT}, not {limit}")
        if version != self._version:
            self._sort(subscriptions())
            self._version = version
        start = bisect_right(self._positions, decode_cursor(cursor)) if cursor else 0
        found: list[Subscription] = []
        for item in self._items[start:]:
            if keep(item):
                if len(found) == limit:
                    return Page(found, encode_cursor(_position(found[-1])))
                found.append(item)
        return Page(found, None)

    def _sort(self, subscriptions: Iterable[Subscription]) -> None:
        self._items = sorted(subscriptions, key=_position)
        self._positions = [_position(item) for item in self._items]


def _position(subscription: Subscription) -> Position:
    return int(subscription.created_at.timestamp() * 1000), subscription.id


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        created, subscription_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(created, int) or not isinstance(subscription_id, str):
            raise ValueError("not a position")
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput("cursor", "is not a cursor this API gave out (take next_cursor from the last page)") from exc
    return created, subscription_id
