"""The results service's HTTP query server, for the processes that cannot open the store.

Embedded chdb lets one process only open its data directory: the CLI, the admin API and
tests ask this server instead. Routes:

    GET /healthz                                           {"ok": true}
    GET /v1/stats[?subscription_id=]                       {"subscriptions": [row, ...]}
    GET /v1/attempts/count[?subscription_id=&outcome=]     {"count": n}
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from pipeline.results.store import AsyncResultsStore

logger = logging.getLogger(__name__)

STORE_KEY = web.AppKey("store", AsyncResultsStore)


def json_safe(value: Any) -> Any:
    """Datetimes as ISO 8601 in UTC; NaN and infinities (no JSON for them) as null."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_safe_row(row: dict[str, Any]) -> dict[str, Any]:
    return {name: json_safe(value) for name, value in row.items()}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    rows = await request.app[STORE_KEY].stats(request.query.get("subscription_id"))
    return web.json_response({"subscriptions": [json_safe_row(row) for row in rows]})


async def count_attempts(request: web.Request) -> web.Response:
    count = await request.app[STORE_KEY].count_attempts(
        request.query.get("subscription_id"), request.query.get("outcome")
    )
    return web.json_response({"count": count})


@web.middleware
async def store_errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """A failing query answers 503 with a JSON reason, so clients can show it."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        logger.exception("query %s failed", request.path_qs)
        return web.json_response({"error": f"results store query failed: {exc}"}, status=503)


def create_query_app(store: AsyncResultsStore) -> web.Application:
    app = web.Application(middlewares=[store_errors_as_json])
    app[STORE_KEY] = store
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/stats", stats)
    app.router.add_get("/v1/attempts/count", count_attempts)
    return app


async def start_query_server(store: AsyncResultsStore, host: str, port: int) -> web.AppRunner:
    """Serves until the returned runner's cleanup(); port 0 picks a free port (see bound_port)."""
    runner = web.AppRunner(create_query_app(store), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])
