"""Status handling on the real pipeline: 410 disables, Retry-After is honoured, a failing
endpoint is disabled, and a disabled endpoint's backlog (events published while it is disabled
too) drains in order once enabled again."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.kafka.admin import ensure_core_topics
from pipeline.models import decode_event
from pipeline.producer import EventPublisher
from pipeline.receiver import ReceivedDelivery, Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.snapshot import read_snapshot
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

pytestmark = pytest.mark.integration


class Endpoint:
    """Answers each path with the statuses queued for it, then 204."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.receiver = Receiver(respond=self._respond)

    def _respond(self, delivery: ReceivedDelivery) -> tuple[int, dict[str, str]]:
        queue = self.answers.get(delivery.path)
        return queue.pop(0) if queue else (204, {})


@pytest.fixture(scope="module")
def stack(module_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    settings = module_settings.model_copy(update={
        "retry_schedule_s": (0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2), "auto_disable_after_s": 1.0,
        "auto_disable_min_failures": 4, "max_retry_after_s": 5.0})
    ensure_core_topics(settings)
    endpoint = Endpoint()
    endpoint.receiver.start()
    logs = tmp_path_factory.mktemp("logs")
    try:
        with running_stages(settings, ["pipeline.router", "pipeline.dispatcher"], logs):
            yield settings, endpoint, logs
    finally:
        endpoint.receiver.stop()


def subscribe(settings: Settings, endpoint: Endpoint, **fields) -> tuple:
    kind = f"t{uuid.uuid4().hex[:8]}"
    commands = SubscriptionCommands(SubscriptionWriter(settings), lambda i: read_snapshot(settings).get(i))
    created = commands.create({"name": kind, "url": f"{endpoint.receiver.base_url}/{kind}",
                               "event_types": [f"{kind}.*"], **fields})
    return commands, created, kind, f"/{kind}"


def publish(settings: Settings, kind: str, count: int, start: int = 0) -> list[str]:
    with EventPublisher(settings) as publisher:
        return [publisher.publish_fields(type=f"{kind}.happened", ordering_key="k", data=json.dumps({"n": n}).encode()).id
                for n in range(start, start + count)]


def sequence(endpoint: Endpoint, path: str) -> list[int]:
    return [json.loads(d.body)["data"]["n"] for d in endpoint.receiver.by_path(path)]


def parked(settings: Settings, source_topic: str) -> int:
    """How many dead letters came from this endpoint topic."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([TopicNames.from_settings(settings).dead_letters])
    count = 0
    try:
        while (message := consumer.poll(1.0)) is not None:
            if message.error() is None and dict(message.headers() or []).get("source") == source_topic.encode():
                count += 1
    finally:
        consumer.close()
    return count


def decisions(settings: Settings, event_ids: list[str]) -> dict[str, dict]:
    """The router's decisions for these events, by event id."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([TopicNames.from_settings(settings).routing])
    found = {}
    try:
        while (message := consumer.poll(1.0)) is not None:
            if message.error() is None and (decision := codec("routing_decision").decode(message.value()))["event_id"] in event_ids:
                found[decision["event_id"]] = decision
    finally:
        consumer.close()
    return found


def disabled_events(settings: Settings, subscription_id: str) -> list[dict]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([TopicNames.from_settings(settings).events])
    found = []
    try:
        while (message := consumer.poll(1.0)) is not None:
            event = decode_event(message.value())
            if event.type == "pipeline.subscription.disabled" and json.loads(event.data)["subscription_id"] == subscription_id:
                found.append(json.loads(event.data))
    finally:
        consumer.close()
    return found


def test_410_disables_keeps_the_backlog_and_drains_it_in_order_when_enabled(stack) -> None:
    settings, endpoint, logs = stack
    commands, subscription, kind, path = subscribe(settings, endpoint)
    endpoint.answers[path] = [(410, {})]
    publish(settings, kind, 5)
    with logs_on_failure(logs):
        wait_until(lambda: not read_snapshot(settings)[subscription.id].active, what="the subscription disabled")
        reasons = wait_until(lambda: disabled_events(settings, subscription.id), what="the operator event")
    assert "410" in reasons[0]["reason"]
    assert "410" in (read_snapshot(settings)[subscription.id].disabled_reason or "")
    # A user pauses another subscription after the disabling was written (one partition, in order):
    # once the router drops an event for that pause, it has read the disabling too.
    _, probe, probe_kind, _ = subscribe(settings, endpoint)
    commands.update(probe.id, {"active": False})
    probes: list[str] = []
    wait_until(lambda: probes.extend(publish(settings, probe_kind, 1)) or any(
        d["reason"] == "paused" for d in decisions(settings, probes).values()), what="the router seeing the pause")
    while_disabled = publish(settings, kind, 3, start=5)
    routed = wait_until(lambda: len(d := decisions(settings, while_disabled)) == 3 and d, what="their routing")
    assert all(d["matched"] == [subscription.id] for d in routed.values())  # not dropped as paused
    assert sequence(endpoint, path) == [0]  # the first try was answered 410; nothing more while disabled
    commands.update(subscription.id, {"active": True})
    assert read_snapshot(settings)[subscription.id].disabled_reason is None
    wait_until(lambda: len(sequence(endpoint, path)) >= 9, what="the backlog drained")
    assert sequence(endpoint, path) == [0, 0, 1, 2, 3, 4, 5, 6, 7]


def test_retry_after_is_honoured(stack) -> None:
    settings, endpoint, _ = stack
    _, _, kind, path = subscribe(settings, endpoint)
    endpoint.answers[path] = [(503, {"Retry-After": "2"})]
    publish(settings, kind, 1)
    first, second = wait_until(lambda: len(d := endpoint.receiver.by_path(path)) >= 2 and d, what="the retry")
    assert second.received_at - first.received_at >= 1.9  # the schedule alone would wait 0.2 s


def test_retry_after_holds_back_every_key_of_the_endpoint(stack) -> None:
    settings, endpoint, _ = stack
    _, _, kind, path = subscribe(settings, endpoint)
    endpoint.answers[path] = [(429, {"Retry-After": "2"})]
    publish(settings, kind, 1)
    (told,) = wait_until(lambda: endpoint.receiver.by_path(path), what="the request answered 429")
    with EventPublisher(settings) as publisher:  # another key: its own lane, but the same endpoint
        publisher.publish_fields(type=f"{kind}.happened", ordering_key="other", data=json.dumps({"n": 99}).encode())
    later = wait_until(lambda: [d for d in endpoint.receiver.by_path(path) if json.loads(d.body)["data"]["n"] == 99],
                       what="the other key's delivery")
    assert later[0].received_at - told.received_at >= 1.9


def test_only_failures_for_the_window_disable_the_endpoint(stack) -> None:
    settings, endpoint, _ = stack
    _, subscription, kind, path = subscribe(settings, endpoint)
    endpoint.answers[path] = [(500, {})] * 100
    publish(settings, kind, 1)
    wait_until(lambda: not read_snapshot(settings)[subscription.id].active, what="auto-disable")
    reasons = wait_until(lambda: disabled_events(settings, subscription.id), what="the operator event")
    assert "only failures" in reasons[0]["reason"]
    assert len(endpoint.receiver.by_path(path)) >= 4



def test_replay_from_a_time_delivers_that_range_again_in_order(stack) -> None:
    from datetime import datetime, timezone

    from pipeline.replay.replayer import Replayer

    settings, endpoint, _ = stack
    _, subscription, kind, path = subscribe(settings, endpoint)
    publish(settings, kind, 3)
    wait_until(lambda: len(sequence(endpoint, path)) >= 3, what="the first three")
    middle = datetime.now(timezone.utc)
    with EventPublisher(settings) as publisher:
        for n in (3, 4):
            publisher.publish_fields(type=f"{kind}.happened", ordering_key="k", data=json.dumps({"n": n}).encode())
    wait_until(lambda: len(sequence(endpoint, path)) >= 5, what="the last two")
    assert Replayer(settings).replay(subscription.id, since=middle) == 2
    wait_until(lambda: len(sequence(endpoint, path)) >= 7, what="the replay")
    assert sequence(endpoint, path) == [0, 1, 2, 3, 4, 3, 4]


def test_dead_letters_are_redriven_once_the_endpoint_recovers(stack) -> None:
    from pipeline.replay.replayer import Replayer

    settings, endpoint, _ = stack
    _, subscription, kind, path = subscribe(settings, endpoint, retry_schedule_s=[0, 0.1])
    endpoint.answers[path] = [(500, {})] * 6  # three events, two attempts each: all dead-lettered
    publish(settings, kind, 3)
    wait_until(lambda: len(endpoint.receiver.by_path(path)) >= 6 and not endpoint.answers[path], what="failures")
    topic = TopicNames.from_settings(settings).endpoint(subscription.id)
    wait_until(lambda: parked(settings, topic) == 3, what="three dead letters")  # read-only: redrive is not
    assert Replayer(settings).redrive(subscription_id=subscription.id) == 3
    wait_until(lambda: len(sequence(endpoint, path)) >= 9, what="the redriven deliveries")
    assert sequence(endpoint, path)[6:] == [0, 1, 2]
    assert Replayer(settings).redrive(subscription_id=subscription.id) == 0  # each parked task goes back once


def test_unordered_failures_wait_in_a_delay_topic_while_the_rest_flows(stack) -> None:
    from confluent_kafka import TopicPartition

    from pipeline.kafka.offsets import watermarks

    settings, endpoint, _ = stack
    _, _, kind, path = subscribe(settings, endpoint, ordering="none", retry_schedule_s=[0, 1, 1])
    endpoint.answers[path] = [(500, {})]  # the first request fails
    publish(settings, kind, 4)
    wait_until(lambda: len(endpoint.receiver.by_path(path)) >= 5, what="the retry")
    received = [json.loads(d.body)["data"]["n"] for d in endpoint.receiver.by_path(path)]
    failed = received[0]
    assert sorted(received[1:]) == [0, 1, 2, 3] and received[-1] == failed  # the others did not wait for it
    tier = TopicNames.from_settings(settings).retry_tier(1)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "count"})
    try:
        parked = sum(watermarks(consumer, TopicPartition(tier, p))[1] for p in range(settings.results_partitions))
    finally:
        consumer.close()
    # Parked in the one-second tier; a jittered delay past a second waits there once more for the rest.
    assert parked in (1, 2)
