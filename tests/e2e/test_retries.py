"""A failing delivery is retried in place: later messages of its key wait, other keys flow."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pipeline.config import Settings
from pipeline.producer import EventPublisher
from pipeline.receiver import ReceivedDelivery, Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from tests.polling import wait_until
from tests.stages import running_stages, stage_logs

FAILURES_BEFORE_SUCCESS = 2


@pytest.mark.integration
def test_a_retried_message_keeps_its_key_in_order_and_every_attempt_is_counted(settings: Settings,
                                                                                tmp_path: Path) -> None:
    failed_once: dict[str, int] = {}

    def respond(delivery: ReceivedDelivery) -> int:
        body = json.loads(delivery.body)
        if body["data"]["seq"] == 0 and body["ordering_key"] == "slow":
            failed_once[body["id"]] = failed_once.get(body["id"], 0) + 1
            if failed_once[body["id"]] <= FAILURES_BEFORE_SUCCESS:
                return 503
        return 204

    receiver = Receiver(respond=respond)
    base_url = receiver.start()
    commands = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None)
    subscription = commands.create({"name": "flaky", "url": f"{base_url}/flaky", "event_types": ["*"]})
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, ["pipeline.router", "pipeline.dispatcher", "pipeline.results"], logs):
            with EventPublisher(settings) as publisher:
                for seq in range(5):
                    for key in ("slow", "fast"):
                        publisher.publish_fields(type="thing.happened", ordering_key=key,
                                                 data=json.dumps({"seq": seq}).encode())
            try:
                wait_until(lambda: len(receiver.deliveries) >= 10 + FAILURES_BEFORE_SUCCESS, what="all deliveries")
                stats = wait_until(lambda: _stats(settings, subscription.id), what="attempts in ClickHouse")
            except AssertionError:
                print(stage_logs(logs))
                raise
    finally:
        receiver.stop()

    sequences: dict[str, list[int]] = {"slow": [], "fast": []}
    for delivery in receiver.deliveries:
        body = json.loads(delivery.body)
        sequences[body["ordering_key"]].append(body["data"]["seq"])
    assert sequences["slow"] == [0, 0, 0, 1, 2, 3, 4]  # two failures, then in order
    assert sequences["fast"] == [0, 1, 2, 3, 4]
    ids = [d.headers["webhook-id"] for d in receiver.deliveries if json.loads(d.body)["ordering_key"] == "slow"]
    assert ids[0] == ids[1] == ids[2]  # the same webhook-id on every retry
    assert (stats["delivered"], stats["failed"], stats["attempts"]) == (10, FAILURES_BEFORE_SUCCESS, 12)


def _stats(settings: Settings, subscription_id: str) -> dict | None:
    rows = httpx.get(f"http://127.0.0.1:{settings.results_port}/v1/stats", timeout=5).json()["subscriptions"]
    row = next((r for r in rows if r["subscription_id"] == subscription_id), None)
    return row if row and row["attempts"] >= 10 + FAILURES_BEFORE_SUCCESS else None
