"""Every stage's /metrics, scraped during an end-to-end run, counts what the receiver got."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pipeline.config import Settings
from pipeline.producer import EventPublisher
from pipeline.receiver import Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from tests.conftest import results_auth
from tests.metrics.scrape import scrape, value
from tests.polling import answers, wait_until
from tests.stages import logs_on_failure, running_stages

STAGES = ["pipeline.router", "pipeline.dispatcher", "pipeline.results", "pipeline.api"]


@pytest.mark.integration
def test_each_stage_counts_what_the_receiver_got(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"backlog_metrics_interval_s": 1.0})  # backlogs and lag measured often
    receiver = Receiver()
    base_url = receiver.start()
    commands = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None)
    commands.create({"name": "users", "url": f"{base_url}/users", "event_types": ["user.*"]})
    commands.create({"name": "all", "url": f"{base_url}/all", "event_types": ["user.*", "order.*"]})
    router_url = f"http://127.0.0.1:{settings.router_metrics_port}/metrics"
    dispatcher_url = f"http://127.0.0.1:{settings.dispatcher_metrics_port}/metrics"
    results_url = f"http://127.0.0.1:{settings.results_port}/metrics"
    api_url = f"http://127.0.0.1:{settings.api_port}"
    types = ["user.created"] * 30 + ["order.paid"] * 20  # through the SDK; 10 more over HTTP match nothing
    unmatched = [{"type": "never.matched", "ordering_key": f"k{n}", "data": {"n": n}} for n in range(10)]
    deliveries = 30 * 2 + 20
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, STAGES, logs):
            with EventPublisher(settings) as publisher:
                for n, event_type in enumerate(types):
                    publisher.publish_fields(type=event_type, ordering_key=f"k{n % 4}", source="test",
                                             data=json.dumps({"n": n}).encode())
            with logs_on_failure(logs):
                wait_until(lambda: answers(f"{api_url}/healthz"), timeout_s=60, what="the admin API")
                published = httpx.post(f"{api_url}/v1/events", json=unmatched, headers=results_auth(settings),
                                       timeout=30)
                assert published.status_code == 202, published.text
                wait_until(lambda: receiver.count >= deliveries, timeout_s=120, what=f"{deliveries} deliveries")
                router = wait_until(lambda: (s := scrape(router_url)) and
                                    value(s, "webhook_router_events_total") >= len(types) + 10 and s,
                                    timeout_s=30, what="the router's counts")
                dispatcher = wait_until(lambda: (s := scrape(dispatcher_url)) and
                                        value(s, "webhook_deliveries_total") >= deliveries and s,
                                        timeout_s=30, what="the dispatcher's counts")
                results = wait_until(lambda: (s := scrape(results_url)) and
                                     value(s, "webhook_results_rows_stored_total", table="delivery_attempts")
                                     >= deliveries and s, timeout_s=60, what="the results service's counts")
                drained = wait_until(lambda: (s := scrape(dispatcher_url)) and
                                     value(s, "webhook_endpoint_backlog_messages") == 0 and
                                     value(s, "webhook_dispatcher_endpoint_partitions", state="owned") == 2 and s,
                                     timeout_s=30, what="the endpoints' backlog measured empty")
                sink_caught_up = wait_until(lambda: (s := scrape(results_url)) and
                                            value(s, "webhook_results_sink_lag_messages") == 0 and
                                            value(s, "webhook_results_rows_stored_total", table="routing_decisions")
                                            >= len(types) + 10 and s, timeout_s=30, what="the results sink caught up")
                api = scrape(f"{api_url}/metrics")
            stats_without_token = httpx.get(results_url.replace("/metrics", "/v1/stats"), timeout=5)
    finally:
        receiver.stop()

    assert receiver.count == deliveries
    assert value(router, "webhook_router_events_total", outcome="routed") == 50
    assert value(router, "webhook_router_events_total", outcome="dropped", reason="no_match") == 10
    assert value(router, "webhook_router_tasks_total") == deliveries
    assert value(dispatcher, "webhook_deliveries_total") == receiver.count
    assert value(dispatcher, "webhook_deliveries_total", outcome="success", status_class="2xx") == receiver.count
    assert value(dispatcher, "webhook_delivery_latency_seconds_count", outcome="success") == receiver.count
    assert value(dispatcher, "webhook_dead_letters_total") == 0
    assert value(dispatcher, "webhook_retries_waiting") == 0
    assert value(drained, "webhook_endpoint_backlog_messages") == 0
    assert value(results, "webhook_results_rows_stored_total", table="delivery_attempts") == receiver.count
    assert value(sink_caught_up, "webhook_results_rows_stored_total", table="routing_decisions") == len(types) + 10
    assert value(api, "webhook_api_events_published_total") == 10
    assert value(api, "webhook_api_requests_total", method="POST", route="/v1/events", status_class="2xx") == 1
    assert value(sink_caught_up, "webhook_results_sink_lag_seconds") == 0
    assert stats_without_token.status_code == 401  # /metrics is open, the statistics are not

