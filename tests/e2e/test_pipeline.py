"""The whole pipeline as processes, on the real broker and embedded ClickHouse."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from pipeline.config import Settings
from pipeline.producer import EventPublisher
from pipeline.receiver import Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from tests.conftest import results_auth
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

STAGES = ["pipeline.router", "pipeline.dispatcher", "pipeline.results"]
KEYS = [f"customer-{n}" for n in range(5)]
TYPES = ["user.created", "user.updated", "order.paid", "invoice.sent"]


def publish_mix(settings: Settings, count: int) -> list[dict]:
    published = []
    with EventPublisher(settings) as publisher:
        for sequence in range(count):
            key, event_type = KEYS[sequence % len(KEYS)], TYPES[sequence % len(TYPES) if sequence % 7 else 0]
            event = publisher.publish_fields(type=event_type, ordering_key=key, source="test",
                                             data=json.dumps({"seq": sequence, "key": key}).encode())
            published.append({"id": event.id, "type": event_type, "key": key, "seq": sequence})
    return published


def results_stats(settings: Settings) -> dict[str, dict]:
    response = httpx.get(f"http://127.0.0.1:{settings.results_port}/v1/stats", timeout=5,
                         headers=results_auth(settings))
    return {row["subscription_id"]: row for row in response.json()["subscriptions"]}


@pytest.mark.integration
def test_events_reach_matching_endpoints_in_order_signed_and_counted(settings: Settings, tmp_path: Path) -> None:
    receiver = Receiver()
    base_url = receiver.start()
    commands = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None)
    users = commands.create({"name": "users", "url": f"{base_url}/users", "event_types": ["user.*"]})
    orders = commands.create({"name": "orders", "url": f"{base_url}/orders", "event_types": ["order.paid"]})
    nothing = commands.create({"name": "nothing", "url": f"{base_url}/nothing", "event_types": ["never.sent"]})
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, STAGES, logs):
            published = publish_mix(settings, 200)
            expected = {
                "/users": [e for e in published if e["type"].startswith("user.")],
                "/orders": [e for e in published if e["type"] == "order.paid"],
            }
            total = sum(len(events) for events in expected.values())
            with logs_on_failure(logs):
                wait_until(lambda: len(receiver.deliveries) >= total, timeout_s=120, what=f"{total} deliveries")
                stats = wait_until(
                    lambda: (s := results_stats(settings)) and sum(r["delivered"] for r in s.values()) >= total and s,
                    timeout_s=60, what="attempts counted in ClickHouse")
    finally:
        receiver.stop()

    by_path = {path: receiver.by_path(path) for path in ("/users", "/orders", "/nothing")}
    assert by_path["/nothing"] == []
    for path, secret in (("/users", users.secret), ("/orders", orders.secret)):
        received = by_path[path]
        assert sorted(json.loads(d.body)["id"] for d in received) == sorted(e["id"] for e in expected[path])
        _assert_order_per_key(received)
        for delivery in received:
            Webhook(secret).verify(delivery.body, delivery.headers)  # raises if a signature is wrong
    assert stats[users.id]["delivered"] == len(by_path["/users"])
    assert stats[orders.id]["delivered"] == len(by_path["/orders"])
    assert stats.get(nothing.id, {"delivered": 0})["delivered"] == 0


def _assert_order_per_key(received: list) -> None:
    sequences: dict[str, list[int]] = defaultdict(list)
    for delivery in sorted(received, key=lambda d: d.received_at):
        data = json.loads(delivery.body)["data"]
        sequences[data["key"]].append(data["seq"])
    for key, seen in sequences.items():
        assert seen == sorted(seen), f"deliveries for {key} arrived out of order: {seen}"
