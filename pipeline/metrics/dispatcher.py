"""The dispatcher's metrics: deliveries by outcome and status class, their latency, retries
waiting, dead letters, and the backlog of the endpoints it owns.

Deliveries count events (a batch of five is five), as the results do; latency is observed once per
HTTP request. Updating them is a counter increment or two: nothing on the delivery path asks
Kafka or anything else. Backlogs are measured apart, every few seconds (backlog_gauges.py).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Webhook latencies range from a few milliseconds to the 15 s default timeout (and up to 30 s).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
OUTCOMES = ("success", "http_error", "timeout", "connection_error", "refused")
DEAD_LETTER_REASONS = ("retries_exhausted", "refused", "unbuildable", "undecodable")


def status_class(status: int | None) -> str:
    """2xx, 3xx, 4xx, 5xx; `none` when no response came (a timeout, a refused connection)."""
    return "none" if status is None else f"{status // 100}xx"


class DispatcherMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.deliveries = Counter("webhook_deliveries", "Delivery attempts per event, by outcome and status class",
                                  ["outcome", "status_class"], registry=registry)
        self.latency = Histogram("webhook_delivery_latency_seconds", "Time from sending a request to its answer, "
                                 "by outcome", ["outcome"], buckets=LATENCY_BUCKETS_S, registry=registry)
        self.retries_waiting = Gauge("webhook_retries_waiting", "Tasks waiting in their lane for their next attempt",
                                     registry=registry)
        self.retries_deferred = Counter("webhook_retries_deferred", "Tasks of unordered subscriptions sent to the "
                                        "delay topics to be retried later", registry=registry)
        self.dead_letters = Counter("webhook_dead_letters", "Messages parked in the dead-letter topic, by reason",
                                    ["reason"], registry=registry)
        self.backlog = Gauge("webhook_endpoint_backlog_messages", "Tasks in an endpoint topic not yet finished "
                             "(end offset minus the dispatchers' committed offset), per subscription this "
                             "dispatcher owns", ["subscription_id"], registry=registry)
        self.oldest_age = Gauge("webhook_endpoint_oldest_pending_age_seconds", "Age of the oldest unfinished task "
                                "of an endpoint (0 when none), per subscription this dispatcher owns",
                                ["subscription_id"], registry=registry)
        self.partitions = Gauge("webhook_dispatcher_endpoint_partitions", "Endpoint partitions this dispatcher "
                                "owns, and how many of them are parked", ["state"], registry=registry)
        # Assign, unassign, pause and resume keep the GIL while they run: the whole process waits.
        self.consumer_calls = Histogram("webhook_dispatcher_consumer_call_seconds", "How long each call into the "
                                        "endpoint topics' consumer took (assign, pause, resume...), by call",
                                        ["call"], buckets=LATENCY_BUCKETS_S, registry=registry)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)

    def attempted(self, outcome: str, status: int | None, events: int, latency_ms: float) -> None:
        self.deliveries.labels(outcome, status_class(status)).inc(events)
        if outcome != "refused":  # refused before any request was sent: no latency to speak of
            self.latency.labels(outcome).observe(latency_ms / 1000)

    def consumer_call(self, call: str, seconds: float) -> None:
        self.consumer_calls.labels(call).observe(seconds)

    def dead_lettered(self, reason: str, count: int = 1) -> None:
        self.dead_letters.labels(reason).inc(count)
