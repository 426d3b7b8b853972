"""Backlogs: how many tasks wait in each endpoint topic and how old the oldest is (pipeline.subscriptions.backlog).

Asked of Kafka on each request, in one batch for a whole page of subscriptions; the oldest task is
fetched only for subscriptions with a backlog.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from pipeline.api.pages import MAX_LIMIT, SubscriptionPages
from pipeline.errors import InvalidInput
from pipeline.subscriptions.backlog import Backlog, BacklogReader
from pipeline.subscriptions.commands import SubscriptionCommands, UnknownSubscription
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.tokens import Caller


def backlog_router(table: SubscriptionTable, commands: SubscriptionCommands, reader: BacklogReader,
                   caller: Any) -> APIRouter:
    router = APIRouter(tags=["backlog"])
    pages = SubscriptionPages()

    @router.get("/v1/subscriptions/{subscription_id}/backlog")
    async def subscription_backlog(subscription_id: str, who: Caller = Depends(caller)) -> dict:
        """Tasks not yet delivered (`pending`), and when the oldest of them was routed and its age."""
        subscription = commands.require(subscription_id)
        if not who.sees(subscription):
            raise UnknownSubscription(subscription_id)
        found = await run_in_threadpool(reader.read, [subscription_id])
        return found[subscription_id].view()

    @router.get("/v1/backlog")
    async def backlogs(who: Caller = Depends(caller), tenant: str | None = None, limit: int = 100,
                       cursor: str | None = None, pending_only: bool = False) -> dict:
        """Every subscription's backlog, in creation order, `limit` at a time (up to 1000); `next_cursor`
        asks for the next page. With `pending_only`, the `limit` largest backlogs of all subscriptions
        instead, largest first (no cursor: `has_more` says whether there were more)."""
        def keep(s: Subscription) -> bool:
            return who.sees(s) and (tenant is None or s.tenant == tenant)

        if pending_only:
            return await largest(keep, limit)
        page = pages.page(table.version, table.all, limit=limit, cursor=cursor, keep=keep)
        found = await run_in_threadpool(reader.read, [s.id for s in page.items])
        return {"data": [row(s, found[s.id]) for s in page.items], "has_more": page.next_cursor is not None,
                "next_cursor": page.next_cursor}

    async def largest(keep: Callable[[Subscription], bool], limit: int) -> dict:
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput("limit", f"must be between 1 and {MAX_LIMIT}, not {limit}")
        visible = {s.id: s for s in table.all() if keep(s)}
        # Counts for all first (offsets only, one batch); the oldest tasks only for those shown.
        counts = await run_in_threadpool(functools.partial(reader.read, visible, oldest=False))
        pending = sorted((b for b in counts.values() if b.pending), key=lambda b: (-b.pending, b.subscription_id))
        shown = [b.subscription_id for b in pending[:limit]]
        found = await run_in_threadpool(reader.read, shown)
        return {"data": [row(visible[s], found[s]) for s in shown], "has_more": len(pending) > limit,
                "next_cursor": None}

    return router


def row(subscription: Subscription, backlog: Backlog) -> dict:
    return backlog.view() | {"name": subscription.name, "tenant": subscription.tenant, "active": subscription.active}
