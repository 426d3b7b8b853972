"""Backlogs: how many tasks wait in each endpoint topic and how old the oldest is (pipeline.subscriptions.backlog).

Asked of Kafka on each request, in one batch for a whole page of subscriptions; the oldest task is
fetched only for subscriptions with a backlog.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from pipeline.api.pages import SubscriptionPages
from pipeline.subscriptions.backlog import BacklogReader
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
        asks for the next page. `pending_only` leaves out the subscriptions with nothing pending."""
        def keep(s: Subscription) -> bool:
            return who.sees(s) and (tenant is None or s.tenant == tenant)

        page = pages.page(table.version, table.all, limit=limit, cursor=cursor, keep=keep)
        found = await run_in_threadpool(reader.read, [s.id for s in page.items])
        rows = [found[s.id].view() | {"name": s.name, "tenant": s.tenant, "active": s.active} for s in page.items]
        if pending_only:
            rows = [row for row in rows if row["pending"]]
        return {"data": rows, "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor}

    return router
