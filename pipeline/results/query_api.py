"""The results service's HTTP query server, for the processes that cannot open the store.

Embedded chdb lets one process only open its data directory: the CLI, the admin API and
tests ask this server instead. Times are ISO 8601, `now`, or an age (`15m`, `2h`, `7d`);
`from` defaults to an hour before `to`, `to` to now, `step` (seconds, a multiple of 60) to
about 120 points. Filters: subscription_id, tenant, event_type, outcome, status (`2xx`...,
`none`). `by`: subscription_id, tenant, event_type, outcome or status. A delivery parked in
the dead-letter topic is stored as outcome `dead_lettered`; it is no HTTP attempt, so only
`dead_lettered` counts it, and the error log lists it. An attempt whose dispatcher died during
the request is stored as outcome `unknown`: an attempt, counted in `unknown`, neither succeeded
nor failed, without latency. Routes:

    GET /healthz                                      {"ok": true}
    GET /metrics                                      Prometheus metrics of this service (no token)
    GET /v1/stats[?subscription_id=&tenant=]          {"subscriptions": [{subscription_id, attempts, delivered,
                                                        failed, unknown, dead_lettered, p50_ms, p99_ms,
                                                        last_attempt_at}]}   (all time)
    GET /v1/stats/traffic?from&to&step&by&filters     {from, to, step_s, times: [iso], by, series: [{key,
                                                        attempts: [n], succeeded, failed, unknown, dead_lettered,
                                                        error_rate, p50_ms,
                                                        p95_ms, p99_ms}]}   (one value per time)
    GET /v1/stats/summary?from&to&by&filters          {from, to, by, rows: [{key, attempts,
                                                        succeeded, failed, unknown, dead_lettered, error_rate,
                                                        retry_attempts,
                                                        succeeded_on_retry, p50_ms, p95_ms, p99_ms,
                                                        mean_latency_ms, max_latency_ms, request_bytes,
                                                        response_bytes, outcomes: {}, statuses: {},
                                                        last_attempt_at}]}
    GET /v1/stats/routing?from&to&step&tenant&event_type
                                                      {from, to, step_s, times, series: [{key: routed or a drop
                                                        reason, decisions: [n], routes: [n]}],
                                                        totals: [{outcome, reason, decisions, routes}]}
    GET /v1/attempts[?subscription_id=&tenant=&limit=10]   {"attempts": [attempt, newest first]}
    GET /v1/errors?from&to&subscription_id&tenant&event_type&limit=50
                                                      {from, to, errors: [failed attempt, newest first],
                                                        reasons: [{outcome, status_code, reason, attempts,
                                                        events, subscriptions, last_seen}]}
    GET /v1/attempts/count[?subscription_id=&outcome=&tenant=]   {"count": n}   (dead_lettered only if asked)
    GET /v1/events/{event_id}[?tenant=]               {event_id, event_type, tenant, source, event_time,
                                                        routing: [decision], deliveries: [{subscription_id,
                                                        state, attempts: [attempt]}]}   (404 when unknown;
                                                        see pipeline.results.event_trail)

Every route but /healthz and /metrics needs `Authorization: Bearer <token>`, with the admin API's tokens: a
tenant's token sees its own tenant only (its tenant is forced as the `tenant` filter, and asking
for another is refused), an admin token sees all; none, or an unknown one, answers 401; a token without the `manage` scope
(a publish-only one) answers 403.

Bad parameters answer 422 {"error": {"field", "problem"}}; a failing store 503 {"error": {"field": null,
"problem"}}.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pipeline.errors import InvalidInput, error_body
from pipeline.results.event_trail import UnknownEvent, event_trail
from pipeline.results.queries import StatsQueries, json_safe, json_safe_row
from pipeline.results.store import AsyncResultsStore
from pipeline.tokens import MANAGE, TOKEN_REQUIRED, Grant, as_grants, caller_of

__all__ = ["bound_port", "create_query_app", "json_safe", "json_safe_row", "start_query_server"]

logger = logging.getLogger(__name__)

STORE_KEY = web.AppKey("store", AsyncResultsStore)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
OPEN_PATHS = ("/healthz", "/metrics")
QUERIES_KEY = web.AppKey("queries", StatsQueries)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def count_attempts(request: web.Request) -> web.Response:
    count = await request.app[STORE_KEY].count_attempts(
        request.query.get("subscription_id"), request.query.get("outcome"), tenant=request.query.get("tenant")
    )
    return web.json_response({"count": count})


async def show_event(request: web.Request) -> web.Response:
    try:
        found = await event_trail(request.app[STORE_KEY], request.match_info["event_id"],
                                  request.query.get("tenant", ""))
    except UnknownEvent as exc:
        return web.json_response({"error": {"field": exc.field, "problem": exc.problem}}, status=404)
    return web.json_response(found)


def _answer(method_name: str) -> Any:
    """A handler answering with StatsQueries.<method_name>(the request's query parameters)."""

    async def handler(request: web.Request) -> web.Response:
        method = getattr(request.app[QUERIES_KEY], method_name)
        return web.json_response(await method(request.query))

    return handler


def requires_token(tokens: Mapping[str, Grant]) -> Any:
    """A middleware: the caller named by the bearer token, its tenant forced on the query; or 401,
    or 403 for a token that may only publish."""

    @web.middleware
    async def scoped_to_caller(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        who = caller_of(tokens, request.headers.get("Authorization"))
        if who is None:
            return web.json_response(error_body("authorization", TOKEN_REQUIRED), status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        if MANAGE not in who.scopes:
            return web.json_response(error_body("authorization", f"this token lacks the {MANAGE!r} scope"), status=403)
        scoped = request.clone(rel_url=request.rel_url.with_query(who.scoped(request.query)))
        return await handler(scoped)

    return scoped_to_caller


@web.middleware
async def errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bad parameters answer 422 naming the field; a failing query 503 with its reason."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except InvalidInput as exc:
        return web.json_response(error_body(exc.field, exc.problem), status=422)
    except Exception as exc:
        logger.exception("query %s failed", request.path_qs)
        return web.json_response(error_body(None, f"results store query failed: {exc}"), status=503)


def create_query_app(store: AsyncResultsStore, tokens: Mapping[str, Grant | str],
                     registry: CollectorRegistry | None = None) -> web.Application:
    """tokens: as pipeline.tokens.load_tokens gives them, or {"token": "tenant" or "*"}."""
    app = web.Application(middlewares=[errors_as_json, requires_token(as_grants(tokens))])
    app[STORE_KEY] = store
    app[REGISTRY_KEY] = registry or CollectorRegistry()
    app[QUERIES_KEY] = StatsQueries(store)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/stats", _answer("subscriptions"))
    app.router.add_get("/v1/stats/traffic", _answer("traffic"))
    app.router.add_get("/v1/stats/summary", _answer("summary"))
    app.router.add_get("/v1/stats/routing", _answer("routing"))
    app.router.add_get("/v1/attempts", _answer("last_attempts"))
    app.router.add_get("/v1/errors", _answer("errors"))
    app.router.add_get("/v1/attempts/count", count_attempts)
    app.router.add_get("/v1/events/{event_id:.+}", show_event)
    return app


async def start_query_server(store: AsyncResultsStore, host: str, port: int, *,
                             tokens: Mapping[str, Grant | str], registry: CollectorRegistry | None = None) -> web.AppRunner:
    """Serves until the returned runner's cleanup(); port 0 picks a free port (see bound_port)."""
    runner = web.AppRunner(create_query_app(store, tokens, registry), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])
