"""A /metrics server of its own, for the stages without an HTTP server (router, dispatcher)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)
METRICS_HOST = "127.0.0.1"
METRICS_PORT_TRIES = 10  # a second process of a stage on the machine takes the next free port


def serve_metrics(registry: CollectorRegistry, port: int, stage: str, host: str = METRICS_HOST) -> int | None:
    """Serves the registry at http://host:port/metrics from a daemon thread; the port bound, or None
    when metrics are off (port 0) or no port of the range was free (a stage never stops for metrics)."""
    if port == 0:
        return None
    for candidate in range(port, port + METRICS_PORT_TRIES):
        try:
            start_http_server(candidate, addr=host, registry=registry)
        except OSError:
            continue
        log.info("%s metrics at http://%s:%d/metrics", stage, host, candidate)
        return candidate
    log.warning("%s metrics are off: ports %d to %d are all taken", stage, port, port + METRICS_PORT_TRIES - 1)
    return None
