"""The admin API's metrics: requests by route and status class, events published over HTTP."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter("webhook_api_requests", "Requests answered, by method, route and status class",
                                ["method", "route", "status_class"], registry=registry)
        self.latency = Histogram("webhook_api_request_seconds", "Time to answer a request, by route",
                                 ["route"], registry=registry)
        self.published = Counter("webhook_api_events_published", "Events accepted by POST /v1/events "
                                 "(duplicates left out)", registry=registry)
        self.pooled_topics = Gauge("webhook_api_endpoint_topics_ready", "Endpoint topics made ahead that no "
                                   "subscription took yet (PIPELINE_ENDPOINT_TOPIC_POOL)", registry=registry)
