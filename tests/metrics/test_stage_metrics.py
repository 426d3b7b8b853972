"""What the stages count, met by their own code paths (no broker): a dispatcher's attempts, retries
and dead letters; the router's decisions."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from pipeline.dispatcher.backlog_gauges import BacklogGauges

from pipeline.metrics.dispatcher import DispatcherMetrics, status_class
from pipeline.subscriptions.backlog import Backlog
from tests.dispatcher.test_deliverer import Transport, deliverer, task


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_status_classes() -> None:
    assert [status_class(s) for s in (None, 200, 204, 302, 410, 503)] == ["none", "2xx", "2xx", "3xx", "4xx", "5xx"]


async def test_a_spent_schedule_counts_each_attempt_and_one_dead_letter() -> None:
    registry = CollectorRegistry()
    work, _, subscription = deliverer(Transport(503))
    work.metrics = DispatcherMetrics(registry)

    await work.deliver([task(subscription, 0)])

    assert sample(registry, "webhook_deliveries_total", outcome="http_error", status_class="5xx") == 3
    assert sample(registry, "webhook_delivery_latency_seconds_count", outcome="http_error") == 3
    assert sample(registry, "webhook_dead_letters_total", reason="retries_exhausted") == 1
    assert sample(registry, "webhook_retries_waiting") == 0  # each wait ended


async def test_a_refused_delivery_counts_no_latency_and_a_refused_dead_letter() -> None:
    registry = CollectorRegistry()
    work, _, subscription = deliverer(Transport(refuse=True))
    work.metrics = DispatcherMetrics(registry)

    await work.deliver([task(subscription, 0)])

    assert sample(registry, "webhook_deliveries_total", outcome="refused", status_class="none") == 1
    assert sample(registry, "webhook_delivery_latency_seconds_count", outcome="refused") == 0
    assert sample(registry, "webhook_dead_letters_total", reason="refused") == 1


async def test_an_undecodable_task_counts_as_undecodable() -> None:
    registry = CollectorRegistry()
    work, _, subscription = deliverer(Transport(200))
    work.metrics = DispatcherMetrics(registry)
    record = task(subscription, 0)
    record.value = b"not avro"

    await work.deliver([record])

    assert sample(registry, "webhook_dead_letters_total", reason="undecodable") == 1
    assert sample(registry, "webhook_deliveries_total") == 0


async def test_parked_endpoints_read_no_backlog_without_asking_kafka() -> None:
    """With thousands of quiet endpoints, only the awake ones are measured."""
    asked: list[list[str]] = []

    class Reader:
        def read(self, subscription_ids: list[str]) -> dict[str, Backlog]:
            asked.append(subscription_ids)
            return {s: Backlog(s, 7, int(time.time() * 1000) - 5000) for s in subscription_ids}

    registry = CollectorRegistry()
    metrics = DispatcherMetrics(registry)
    owned = ["sub_awake", "sub_quiet"]
    gauges = BacklogGauges(Reader(), metrics, lambda: owned, lambda: (2, 1), 15.0, parked=lambda: {"sub_quiet"})
    await gauges.measure()
    assert asked == [["sub_awake"]]
    backlog = "webhook_endpoint_backlog_messages"
    assert (sample(registry, backlog, subscription_id="sub_awake"), sample(registry, backlog, subscription_id="sub_quiet")) == (7, 0)
    owned.remove("sub_awake")  # handed to another dispatcher: its gauge goes
    await gauges.measure()
    assert registry.get_sample_value(backlog, {"subscription_id": "sub_awake"}) is None
