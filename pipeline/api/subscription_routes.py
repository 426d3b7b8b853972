"""/v1/subscriptions: create, list, show, update, delete, pause, resume, rotate the secret, send a
test, replay, redrive.

Every route sees only the caller's tenant; another tenant's subscription is answered as absent.
A subscription's answers carry its version as `version` and as the ETag; a change sent with
`If-Match: "<version>"` is made only to that version (412 otherwise), one sent without it is made
to whatever version is current when it is written.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool

from pipeline.api.pages import SubscriptionPages
from pipeline.tokens import Caller
from pipeline.errors import InvalidInput
from pipeline.producer.tasks import TaskPublisher, webhook_test_task
from pipeline.replay.moments import parse_moment
from pipeline.replay.replayer import Replayer
from pipeline.router.matching import type_matches
from pipeline.subscriptions.commands import SubscriptionCommands, UnknownSubscription
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.table import SubscriptionTable


def subscription_router(table: SubscriptionTable, commands: SubscriptionCommands, tasks: TaskPublisher,
                        replayer: Replayer, caller: Any, rotation_overlap: timedelta) -> APIRouter:
    router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])

    def visible(subscription_id: str, who: Caller) -> Subscription:
        subscription = commands.require(subscription_id)
        if not who.sees(subscription):
            raise UnknownSubscription(subscription_id)  # not "forbidden": existence is not disclosed
        return subscription

    pages = SubscriptionPages()

    @router.get("")
    async def list_subscriptions(who: Caller = Depends(caller), tenant: str | None = None,
                                 active: bool | None = None, event_type: str | None = Query(None),
                                 limit: int = 100, cursor: str | None = None) -> dict:
        """In creation order, `limit` at a time (up to 1000); `next_cursor` asks for the next page."""
        def keep(s: Subscription) -> bool:
            return (who.sees(s) and (tenant is None or s.tenant == tenant) and (active is None or s.active == active)
                    and (event_type is None or any(type_matches(p, event_type) for p in s.event_types)))

        return pages.page(table.version, table.all, limit=limit, cursor=cursor, keep=keep).view()

    @router.post("", status_code=201)
    async def create(response: Response, fields: dict[str, Any] = Body(...), who: Caller = Depends(caller)) -> dict:
        if not who.is_admin:
            if fields.setdefault("tenant", who.tenant) != who.tenant:
                raise InvalidInput("tenant", "a tenant token can only create subscriptions of its own tenant")
        created = await run_in_threadpool(commands.create, fields)
        return tagged(created, response) | {"secret": created.secret}  # shown once, as Svix and Stripe do

    @router.get("/{subscription_id}")
    async def show(subscription_id: str, response: Response, who: Caller = Depends(caller)) -> dict:
        return tagged(visible(subscription_id, who), response)

    @router.patch("/{subscription_id}")
    async def update(subscription_id: str, response: Response, changes: dict[str, Any] = Body(...),
                     who: Caller = Depends(caller), if_match: str | None = IF_MATCH) -> dict:
        visible(subscription_id, who)
        if not who.is_admin and changes.get("tenant", who.tenant) != who.tenant:
            raise InvalidInput("tenant", "a tenant token cannot move a subscription to another tenant")
        updated = await run_in_threadpool(commands.update, subscription_id, changes, expected_version(if_match))
        return tagged(updated, response)

    @router.delete("/{subscription_id}", status_code=204)
    async def delete(subscription_id: str, who: Caller = Depends(caller), if_match: str | None = IF_MATCH) -> None:
        visible(subscription_id, who)
        await run_in_threadpool(commands.delete, subscription_id, expected_version(if_match))

    @router.post("/{subscription_id}/pause")
    async def pause(subscription_id: str, response: Response, who: Caller = Depends(caller),
                    if_match: str | None = IF_MATCH) -> dict:
        """Stop deliveries; events published while paused are dropped (counted as `paused`)."""
        visible(subscription_id, who)
        paused = await run_in_threadpool(commands.update, subscription_id, {"active": False},
                                         expected_version(if_match))
        return tagged(paused, response)

    @router.post("/{subscription_id}/resume")
    async def resume(subscription_id: str, response: Response, who: Caller = Depends(caller),
                     if_match: str | None = IF_MATCH) -> dict:
        """Deliver again; a subscription the pipeline disabled is enabled and drains its backlog in order."""
        visible(subscription_id, who)
        resumed = await run_in_threadpool(commands.update, subscription_id, {"active": True},
                                          expected_version(if_match))
        return tagged(resumed, response)

    @router.post("/{subscription_id}/rotate-secret")
    async def rotate_secret(subscription_id: str, response: Response, who: Caller = Depends(caller),
                            body: dict[str, Any] = Body(default_factory=dict), if_match: str | None = IF_MATCH) -> dict:
        visible(subscription_id, who)
        rotated = await run_in_threadpool(commands.rotate_secret, subscription_id, rotation_overlap,
                                          body.get("secret"), expected_version(if_match))
        expires = rotated.previous_secrets[-1].expires_at.isoformat()
        response.headers["ETag"] = etag(rotated)
        return {"id": rotated.id, "secret": rotated.secret, "previous_secret_expires_at": expires,
                "version": rotated.version}

    @router.post("/{subscription_id}/test", status_code=202)
    async def send_test(subscription_id: str, who: Caller = Depends(caller)) -> dict:
        task = webhook_test_task(visible(subscription_id, who))
        await run_in_threadpool(tasks.publish, task)
        return {"event_id": task.event.id, "type": task.event.type}

    @router.post("/{subscription_id}/replay", status_code=202)
    async def replay(subscription_id: str, body: dict[str, Any] = Body(...), who: Caller = Depends(caller)) -> dict:
        """Deliver again what was sent between `since` and `until` (ISO-8601 or an age like 2h)."""
        visible(subscription_id, who)
        since = parse_moment(str(body.get("since", "")), "since")
        until = parse_moment(str(body["until"]), "until") if body.get("until") else None
        count = await run_in_threadpool(replayer.replay, subscription_id, since, until)
        return {"replayed": count}

    @router.post("/{subscription_id}/redrive", status_code=202)
    async def redrive(subscription_id: str, who: Caller = Depends(caller),
                      body: dict[str, Any] = Body(default_factory=dict)) -> dict:
        """Send this subscription's dead letters again (optionally only those since a time)."""
        visible(subscription_id, who)
        since = parse_moment(str(body["since"]), "since") if body.get("since") else None
        return {"redriven": await run_in_threadpool(replayer.redrive, since, subscription_id)}

    return router



IF_MATCH = Header(None, description='The ETag of the version the change is made to, like "3"; 412 if it is '
                                   "not the current one. Without it, the change is made to the current version.")


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header names; None without one, or for `*` (any version)."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise InvalidInput("If-Match", 'must be the ETag of the subscription\'s version, like "3"')
    return int(tag)


def etag(subscription: Subscription) -> str:
    return f'"{subscription.version}"'


def tagged(subscription: Subscription, response: Response) -> dict[str, Any]:
    """The subscription's public view, its version as the answer's ETag."""
    response.headers["ETag"] = etag(subscription)
    return subscription.public_view()


def recovery_router(replayer: Replayer, caller: Any) -> APIRouter:
    router = APIRouter(tags=["recovery"])

    @router.post("/v1/recover", status_code=202)
    async def recover(body: dict[str, Any] = Body(...), who: Caller = Depends(caller)) -> dict:
        """Every subscription's dead letters since a time, sent again (admin tokens only)."""
        if not who.is_admin:
            raise HTTPException(403, {"field": "authorization",
                                      "problem": "recovering every subscription's failures needs an admin token"})
        since = parse_moment(str(body.get("since", "")), "since")
        return {"redriven": await run_in_threadpool(replayer.redrive, since)}

    return router
