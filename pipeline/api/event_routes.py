"""/v1/events/{id}: what happened to one event, and resending it to one subscription.

Both need the `manage` scope; a tenant token sees its own tenant's events and subscriptions only
(another tenant's are answered 404). The trail comes from the results service (see
pipeline.results.event_trail); a resend reads the event again from the events topic (see
pipeline.replay.resend).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Header
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from pipeline.tokens import Caller
from pipeline.api.stats_routes import ask_results
from pipeline.errors import InvalidInput
from pipeline.replay.resend import EventGone, Resender
from pipeline.subscriptions.commands import UnknownSubscription
from pipeline.subscriptions.table import SubscriptionTable

ERROR_STATUSES = {EventGone: 410}


def event_router(resender: Resender, table: SubscriptionTable, results_url: str, caller: Any) -> APIRouter:
    """caller: the API's dependency naming who asks (see pipeline.api.auth)."""
    router = APIRouter(prefix="/v1/events", tags=["events"])

    async def trail(event_id: str, who: Caller, authorization: str | None) -> tuple[int, Any]:
        return await ask_results(results_url, f"/v1/events/{quote(event_id, safe='')}", who.scoped({}),
                                 authorization or "")

    @router.get("/{event_id:path}")
    async def show(event_id: str, who: Caller = Depends(caller),
                   authorization: str | None = Header(None)) -> JSONResponse:
        """Where the event was routed or why not, and every attempt per subscription with its state."""
        status, body = await trail(event_id, who, authorization)
        return JSONResponse(body, status_code=status)

    @router.post("/{event_id:path}/resend", status_code=202)
    async def resend(event_id: str, body: dict[str, Any] = Body(...), who: Caller = Depends(caller),
                     authorization: str | None = Header(None)) -> Any:
        """Send the event again to one subscription: body {"subscription_id": "..."}."""
        subscription_id = body.get("subscription_id")
        if not isinstance(subscription_id, str) or not subscription_id:
            raise InvalidInput("subscription_id", "is required: the subscription to resend the event to")
        subscription = table.get(subscription_id)
        if subscription is None or not who.sees(subscription):
            raise UnknownSubscription(subscription_id)
        status, found = await trail(event_id, who, authorization)
        if status != 200:
            return JSONResponse(found, status_code=status)
        task = await run_in_threadpool(resender.resend, found, subscription)
        return {"event_id": task.event.id, "subscription_id": subscription.id, "type": task.event.type}

    return router
