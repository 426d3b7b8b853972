"""The admin API (FastAPI; OpenAPI at /docs). Subscriptions are read from a live table and
written to the compacted topic; statistics come from the results service, the one process
that may open an embedded ClickHouse directory."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from pipeline.config import Settings
from pipeline.errors import InvalidInput
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.commands import SubscriptionCommands, UnknownSubscription
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.subscriptions.writer import SubscriptionWriter


class WriteThroughWriter(SubscriptionWriter):
    """Puts what it writes into this process's table at once, so a read right after a write sees it."""

    def __init__(self, settings: Settings, table: SubscriptionTable):
        super().__init__(settings)
        self.table = table

    def put(self, subscription: Subscription) -> None:
        super().put(subscription)
        self.table.put_local(subscription)

    def delete(self, subscription_id: str) -> None:
        super().delete(subscription_id)
        self.table.remove_local(subscription_id)


def create_app(settings: Settings) -> FastAPI:
    table = SubscriptionTable(settings)
    commands = SubscriptionCommands(WriteThroughWriter(settings, table), table.get)
    results_url = f"http://127.0.0.1:{settings.results_port}"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        follower = asyncio.create_task(table.run())
        await table.wait_loaded(timeout_s=60)
        yield
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

    app = FastAPI(title="Webhook pipeline admin API", version="0.1.0", lifespan=lifespan)

    @app.exception_handler(InvalidInput)
    async def invalid_input(_: Request, exc: InvalidInput) -> JSONResponse:
        status = 404 if isinstance(exc, UnknownSubscription) else 422
        return JSONResponse({"error": {"field": exc.field, "problem": exc.problem}}, status_code=status)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "subscriptions": len(table.rows)}

    @app.get("/v1/subscriptions")
    async def list_subscriptions() -> dict[str, Any]:
        return {"data": [subscription.public_view() for subscription in table.all()]}

    @app.post("/v1/subscriptions", status_code=201)
    def create_subscription(fields: dict[str, Any] = Body(...)) -> dict[str, Any]:
        created = commands.create(fields)
        # The secret is shown once, on creation, as Svix and Stripe do.
        return created.public_view() | {"secret": created.secret}

    @app.get("/v1/subscriptions/{subscription_id}")
    async def show_subscription(subscription_id: str) -> dict[str, Any]:
        return commands.require(subscription_id).public_view()

    @app.patch("/v1/subscriptions/{subscription_id}")
    def update_subscription(subscription_id: str, changes: dict[str, Any] = Body(...)) -> dict[str, Any]:
        return commands.update(subscription_id, changes).public_view()

    @app.delete("/v1/subscriptions/{subscription_id}", status_code=204)
    def delete_subscription(subscription_id: str) -> None:
        commands.delete(subscription_id)

    @app.get("/v1/stats")
    async def stats(subscription_id: str | None = None) -> Any:
        params = {"subscription_id": subscription_id} if subscription_id else {}
        async with httpx.AsyncClient(timeout=10) as client:
            try:
                response = await client.get(f"{results_url}/v1/stats", params=params)
            except httpx.TransportError as exc:
                raise HTTPException(503, f"the results service at {results_url} is not answering: {exc}") from exc
        return JSONResponse(response.json(), status_code=response.status_code)

    return app
