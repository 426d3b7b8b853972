"""The admin API's /metrics, and the middleware counting its requests.

Requests are labelled by route template (`/v1/subscriptions/{subscription_id}`), never by the
path asked, so ids do not multiply the series; a path no route matched counts as `unmatched`.
/metrics asks no token, like /healthz: it holds counts only, and the API listens on 127.0.0.1.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pipeline.metrics.api import ApiMetrics
from pipeline.metrics.dispatcher import status_class


def install_metrics(app: FastAPI, registry: CollectorRegistry, metrics: ApiMetrics) -> None:
    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        metrics.requests.labels(request.method, template, status_class(response.status_code)).inc()
        metrics.latency.labels(template).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
