"""Subscription lists page by cursor: every subscription once, in creation order, whatever
changes between pages; a bad limit or cursor is refused by name."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.api.pages import SubscriptionPages, decode_cursor, encode_cursor
from pipeline.errors import InvalidInput
from pipeline.subscriptions.model import Subscription

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def subscription(n: int, tenant: str = "") -> Subscription:
    # Pairs share a creation time: the id breaks the tie, so none is skipped or repeated.
    return Subscription(name=f"s{n}", url="https://example.com/hook", event_types=["*"], tenant=tenant,
                        created_at=START + timedelta(milliseconds=n // 2), id=f"sub_{n:05d}")


def walk(pages: SubscriptionPages, table: dict[str, Subscription], limit: int, between=None) -> list[str]:  # type: ignore[no-untyped-def]
    seen, cursor, version = [], None, 0
    while True:
        page = pages.page(version, table.values, limit=limit, cursor=cursor, keep=lambda s: s.tenant != "hidden")
        seen += [item.id for item in page.items]
        assert len(page.items) <= limit
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
        if between:
            between(table)
            version += 1


def test_every_subscription_comes_once_in_creation_order() -> None:
    table = {s.id: s for s in map(subscription, range(2500))}
    hidden = subscription(2500, tenant="hidden")
    table[hidden.id] = hidden
    assert walk(SubscriptionPages(), table, limit=100) == [f"sub_{n:05d}" for n in range(2500)]
    assert walk(SubscriptionPages(), table, limit=1000) == [f"sub_{n:05d}" for n in range(2500)]


def test_changes_between_pages_neither_skip_nor_repeat_what_was_there() -> None:
    table = {s.id: s for s in map(subscription, range(300))}
    created = iter(range(300, 400))

    def churn(rows: dict[str, Subscription]) -> None:
        rows.pop(min(rows), None)  # the oldest goes away (already listed)
        new = subscription(next(created))
        rows[new.id] = new  # a newer one comes, and belongs at the end

    seen = walk(SubscriptionPages(), table, limit=7, between=churn)
    assert seen[:300] == [f"sub_{n:05d}" for n in range(300)] and len(seen) == len(set(seen))


def test_a_bad_limit_or_cursor_is_refused_by_name() -> None:
    pages = SubscriptionPages()
    for limit in (0, 1001):
        with pytest.raises(InvalidInput) as refused:
            pages.page(0, list, limit=limit, cursor=None, keep=bool)
        assert refused.value.field == "limit"
    for cursor in ("not-a-cursor", encode_cursor((1, "x"))[:-3], "W10"):
        with pytest.raises(InvalidInput) as refused:
            pages.page(0, list, limit=10, cursor=cursor, keep=bool)
        assert refused.value.field == "cursor"
    assert decode_cursor(encode_cursor((1767225600000, "sub_1"))) == (1767225600000, "sub_1")
