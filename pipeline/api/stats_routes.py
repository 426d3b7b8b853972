"""Statistics in the admin API: the results service's query routes, passed through, and the dashboard.

The admin API cannot open an embedded ClickHouse (the results service holds it), so every
statistics route here asks the results service and answers with what it answered: the same
JSON, the same status (422 for bad parameters, 503 when the store fails). The routes and their
parameters are documented in pipeline.results.query_api.

A tenant's token sees its own tenant only: its requests are sent with that tenant as a filter,
and asking for another tenant is refused (422, like the subscription routes). The caller's token
goes along, and the results service checks and scopes it the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from pipeline.errors import ServiceError, error_body
from pipeline.tokens import Caller

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"
TIMEOUT_S = 10.0

# path -> what it answers (the OpenAPI summary); each takes the query parameters of its results-service route.
PROXIED_ROUTES = {
    "/v1/stats": "All-time delivered, failed and attempted counts and latency per subscription",
    "/v1/stats/traffic": "Attempts, failures, error rate and latency p50/p95/p99 over time, per key",
    "/v1/stats/summary": "Totals over a time range per key, by outcome and status class",
    "/v1/stats/routing": "Routing decisions over time: routed, or dropped by reason",
    "/v1/attempts": "The last attempts of a subscription (or of all), newest first",
    "/v1/errors": "The error log: failed attempts with their reasons, and counts per reason",
}
PARAMETERS_DOC = (
    "Query parameters, all optional: `from`, `to` (ISO 8601, `now` or an age such as `15m`, `2h`, `7d`), "
    "`step` (seconds, a multiple of 60), `by` (subscription_id, tenant, event_type, outcome, status), "
    "filters `subscription_id`, `tenant`, `event_type`, `outcome`, `status` (2xx, 4xx, 5xx, none), `limit`."
)


def stats_router(results_url: str, caller: Any, *, timeout_s: float = TIMEOUT_S) -> APIRouter:
    """caller: the API's dependency naming who asks (see pipeline.api.auth)."""
    router = APIRouter(tags=["statistics"])
    for path, summary in PROXIED_ROUTES.items():
        router.add_api_route(path, _proxy(results_url, path, caller, timeout_s), methods=["GET"],
                             summary=summary, description=PARAMETERS_DOC)
    return router


async def ask_results(results_url: str, path: str, params: dict[str, str], authorization: str,
                      timeout_s: float = TIMEOUT_S) -> tuple[int, Any]:
    """The results service's status and JSON answer, asked with the caller's own token: the results
    service checks and scopes it as this API does. 503 when it does not answer."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            response = await client.get(f"{results_url}{path}", params=params, headers={"authorization": authorization})
        except httpx.TransportError as exc:
            raise ServiceError(f"the results service at {results_url} is not answering: {exc}") from exc
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, error_body(None, f"the results service answered {response.status_code}: "
                                                      f"{response.text[:200]}")


def _proxy(results_url: str, path: str, caller: Any, timeout_s: float) -> Any:
    async def proxy(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        params = who.scoped(request.query_params)
        status, body = await ask_results(results_url, path, params, request.headers.get("authorization", ""), timeout_s)
        return JSONResponse(body, status_code=status)

    proxy.__name__ = "stats" + path.replace("/", "_")  # distinct OpenAPI operation ids
    return proxy


def mount_dashboard(app: FastAPI) -> None:
    """The dashboard at /dashboard/: static files, no build step; it reads the routes above."""

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_slash() -> RedirectResponse:
        # The page loads its scripts by relative URLs, which need the trailing slash.
        return RedirectResponse("/dashboard/")

    app.mount("/dashboard/", StaticFiles(directory=DASHBOARD_DIR, html=True), name="dashboard")
