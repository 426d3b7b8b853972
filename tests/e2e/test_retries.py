"""A failing delivery is retried in place: later messages of its key wait, other keys flow."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.config import Settings
from pipeline.dispatcher.progress import progress_of
from pipeline.kafka.offsets import committed_metadata
from pipeline.producer import EventPublisher
from pipeline.receiver import ReceivedDelivery, Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from tests.conftest import results_auth
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

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
            with logs_on_failure(logs):
                wait_until(lambda: len(receiver.deliveries) >= 10 + FAILURES_BEFORE_SUCCESS, what="all deliveries")
                stats = wait_until(lambda: _stats(settings, subscription.id), what="attempts in ClickHouse")
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
    rows = httpx.get(f"http://127.0.0.1:{settings.results_port}/v1/stats", timeout=5,
                     headers=results_auth(settings)).json()["subscriptions"]
    row = next((r for r in rows if r["subscription_id"] == subscription_id), None)
    return row if row and row["attempts"] >= 10 + FAILURES_BEFORE_SUCCESS else None


@pytest.mark.integration
def test_a_dispatcher_that_dies_mid_retry_leaves_its_successor_the_rest_of_the_schedule(settings: Settings,
                                                                                        tmp_path: Path) -> None:
    import signal

    from pipeline.topics import TopicNames
    from tests.e2e.test_delivery_guarantees import parked

    settings = settings.model_copy(update={"retry_schedule_s": (0.0,) + (0.5,) * 5})  # six attempts
    receiver = Receiver(respond=lambda delivery: 500)
    base_url = receiver.start()
    subscription = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None).create(
        {"name": "failing", "url": f"{base_url}/failing", "event_types": ["*"]})
    topic = TopicNames.from_settings(settings).endpoint(subscription.id)
    partitions = [TopicPartition(topic, p) for p in range(settings.endpoint_partitions)]
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, ["pipeline.router", "pipeline.dispatcher"], logs) as first:
            with EventPublisher(settings) as publisher:
                publisher.publish_fields(type="thing.happened", data=b"{}")
            with logs_on_failure(logs):
                wait_until(lambda: any(p.attempt >= 3 for p in asyncio.run(_progress(settings, partitions)).values()),
                           what="the third attempt's progress committed")
            first["pipeline.dispatcher"].send_signal(signal.SIGKILL)
            before = len(receiver.deliveries)
            with running_stages(settings, ["pipeline.dispatcher"], logs / "successor"):
                wait_until(lambda: parked(settings, topic) == 1, timeout_s=60, what="the task dead-lettered")
    finally:
        receiver.stop()
    # Two attempts made when the third was committed as next, perhaps the third too before the kill;
    # six in all, or seven when the third was made but not yet committed.
    assert 2 <= before <= 3 and len(receiver.deliveries) in (6, 7), (before, len(receiver.deliveries))


async def _progress(settings: Settings, partitions: list[TopicPartition]) -> dict:
    """The retry progress the dispatchers committed, read as their successor reads it."""
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                              group_id=f"{settings.topic_prefix}dispatcher", enable_auto_commit=False)
    await reader.start()
    try:
        return progress_of(await committed_metadata(reader, partitions))
    finally:
        await reader.stop()
