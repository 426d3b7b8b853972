"""The router's metrics: events routed, and dropped by reason; how long unmatched events waited for the
subscriptions table to catch up."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.events = Counter("webhook_router_events", "Events decided, by outcome (routed, dropped) and reason "
                              "(no_match, paused, filtered, invalid; empty when routed)",
                              ["outcome", "reason"], registry=registry)
        self.tasks = Counter("webhook_router_tasks", "Delivery tasks written to endpoint topics", registry=registry)
        self.dead_letters = Counter("webhook_dead_letters", "Messages parked in the dead-letter topic, by reason",
                                    ["reason"], registry=registry)
        self._routed = self.events.labels("routed", "")
        for reason in ("no_match", "paused", "filtered", "invalid"):  # every series exists from the start
            self.events.labels("dropped", reason)
        self._invalid = self.dead_letters.labels("invalid_event")
        # The router decides one event at a time: while an event that matched nothing waits for the
        # table to read every change written before it, every event behind it waits too.
        self.catch_up = Histogram("webhook_router_catch_up_seconds", "How long an event that matched nothing "
                                  "waited for the subscriptions table to read every change written before it",
                                  buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
                                  registry=registry)

    def routed(self, tasks: int) -> None:
        self._routed.inc()
        self.tasks.inc(tasks)

    def dropped(self, reason: str) -> None:
        self.events.labels("dropped", reason).inc()

    def refused(self) -> None:
        self.events.labels("dropped", "invalid").inc()
        self._invalid.inc()
