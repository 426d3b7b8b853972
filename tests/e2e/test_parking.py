"""A quiet endpoint's partition is parked (not fetched); its next task wakes it at once, through
the doorbell its writer rings, and a task written without one is still found by the sweep."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.models import DeliveryTask, Event, utcnow
from pipeline.producer import EventPublisher
from pipeline.receiver import Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.topics import TopicNames
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

pytestmark = pytest.mark.integration


def parked_count(log: Path) -> int:
    """How many times the dispatcher has parked partitions so far: those quiet for a while, and
    those caught up when their shard was gained."""
    return len(re.findall(r"parked \d+ quiet endpoint partitions|[1-9]\d* of them caught up and parked at once",
                          log.read_text(errors="replace")))


def test_a_parked_endpoint_is_woken_by_its_next_event(settings: Settings, tmp_path: Path) -> None:
    # Parked after two seconds of quiet; the sweep alone would take ten minutes to notice growth.
    settings = settings.model_copy(update={"dispatcher_park_idle_s": 2.0, "dispatcher_parked_sweep_s": 600.0})
    receiver = Receiver()
    base_url = receiver.start()
    SubscriptionCommands(SubscriptionWriter(settings), lambda _: None).create(
        {"name": "quiet", "url": f"{base_url}/quiet", "event_types": ["quiet.*"]})
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, ["pipeline.router", "pipeline.dispatcher"], logs), \
                EventPublisher(settings) as publisher, logs_on_failure(logs):
            dispatcher_log = logs / "pipeline.dispatcher.log"
            for n in range(3):
                parked_before = parked_count(dispatcher_log)
                publisher.publish_fields(type="quiet.tick", data=json.dumps({"n": n}).encode())
                publisher.flush()
                wait_until(lambda: len(receiver.by_path("/quiet")) == n + 1, timeout_s=30,
                           what=f"delivery {n} to a parked endpoint, woken by its doorbell")
                wait_until(lambda: parked_count(dispatcher_log) > parked_before, timeout_s=30,
                           what="the endpoint parked again")
    finally:
        receiver.stop()


def test_a_task_written_without_a_doorbell_is_found_by_the_sweep(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"dispatcher_park_idle_s": 2.0, "dispatcher_parked_sweep_s": 1.0})
    receiver = Receiver()
    base_url = receiver.start()
    subscription = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None).create(
        {"name": "quiet", "url": f"{base_url}/quiet", "event_types": ["quiet.*"]})
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, ["pipeline.dispatcher"], logs), logs_on_failure(logs):
            wait_until(lambda: parked_count(logs / "pipeline.dispatcher.log") > 0, timeout_s=30,
                       what="the new endpoint parked")
            # Some other tool writes a task straight into the endpoint topic, ringing nothing.
            producer = reliable_producer(settings)
            task = DeliveryTask(subscription_id=subscription.id, routed_at=utcnow(), event=Event(type="quiet.tick"))
            producer.produce(TopicNames.from_settings(settings).endpoint(subscription.id), value=task.to_avro())
            flush_or_raise(producer)
            wait_until(lambda: receiver.by_path("/quiet"), timeout_s=30, what="the sweep to wake the endpoint")
    finally:
        receiver.stop()


def test_a_renewed_endpoint_consumer_delivers_every_task_once_and_in_order(settings: Settings, tmp_path: Path) -> None:
    """The dispatcher's consumer is replaced once it knows more topics than it has assigned
    (here, more than one): an endpoint kept busy meanwhile must lose nothing and repeat nothing
    across the renewals, and the parked ones must still be woken by their doorbells."""
    settings = settings.model_copy(update={"dispatcher_park_idle_s": 2.0, "dispatcher_parked_sweep_s": 600.0,
                                           "dispatcher_renew_after_topics": 1})
    receiver = Receiver()
    base_url = receiver.start()
    commands = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None)
    quiet = ["quiet1", "quiet2", "quiet3"]
    for name in ["busy", *quiet]:
        commands.create({"name": name, "url": f"{base_url}/{name}", "event_types": [f"{name}.*"]})
    logs = tmp_path / "logs"

    def received(name: str) -> list[int]:
        return [json.loads(request.body)["data"]["n"] for request in receiver.by_path(f"/{name}")]

    def renewed_while_fetching() -> bool:
        log = (logs / "pipeline.dispatcher.log").read_text(errors="replace")
        return re.search(r"renewed the endpoint consumer, which knew \d+ topics: [1-9]\d* partitions", log) is not None

    try:
        with running_stages(settings, ["pipeline.router", "pipeline.dispatcher"], logs), \
                EventPublisher(settings) as publisher, logs_on_failure(logs):
            for n in range(300):  # ten seconds: the quiet ones park, and the consumer is renewed
                publisher.publish_fields(type="busy.tick", ordering_key="one", data=json.dumps({"n": n}).encode())
                for name in quiet if n % 100 == 0 else ():
                    publisher.publish_fields(type=f"{name}.tick", ordering_key="one", data=json.dumps({"n": n}).encode())
                publisher.flush()
                if n == 0:  # the stages are up and delivering before the pacing starts
                    wait_until(lambda: all(received(name) for name in ["busy", *quiet]), timeout_s=60,
                               what="the first task of every endpoint")
                time.sleep(0.03)  # pacing the events, not waiting for anything
            wait_until(lambda: len(received("busy")) >= 300, timeout_s=60, what="the busy endpoint's tasks")
            assert received("busy") == list(range(300))
            for name in quiet:
                wait_until(lambda: len(received(name)) >= 3, timeout_s=30, what=f"{name}'s tasks")
                assert received(name) == [0, 100, 200]
            assert renewed_while_fetching()
    finally:
        receiver.stop()
