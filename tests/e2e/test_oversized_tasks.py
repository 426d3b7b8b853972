"""A task too large to park whole in the dead-letter topic still ends there, as a reference to
itself, and the dispatcher moves on instead of retrying for ever; a redrive delivers the task
itself again."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.models import DeliveryTask, Event, utcnow
from pipeline.receiver import Receiver
from pipeline.replay.replayer import Replayer
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

pytestmark = pytest.mark.integration


def task_of_size(subscription_id: str, size: int) -> bytes:
    """A task whose Avro bytes are exactly `size` long."""
    def encoded(filler: int) -> bytes:
        event = Event(id="evt_big", type="big.happened", data=json.dumps("x" * filler).encode())
        return DeliveryTask(subscription_id=subscription_id, routed_at=utcnow(), event=event).to_avro()
    filler = size - len(encoded(0))
    while len(value := encoded(filler)) != size:  # the Avro length prefix grows by a byte or two
        filler += size - len(value)
    return value


def consume(settings: Settings, topic: str, wanted) -> list:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    found: list = []
    try:
        while (message := consumer.poll(1.0)) is not None:
            if message.error() is None and wanted(message):
                found.append(message)
    finally:
        consumer.close()
    return found


def test_a_task_too_large_to_park_whole_is_parked_as_a_reference_and_redriven_whole(settings: Settings,
                                                                                     tmp_path: Path) -> None:
    names = TopicNames.from_settings(settings)
    failing = [True]
    receiver = Receiver(respond=lambda delivery: 500 if failing[0] else 204)
    base_url = receiver.start()
    subscription = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None).create(
        {"name": "big", "url": f"{base_url}/big", "event_types": ["big.*"]})
    endpoint = names.endpoint(subscription.id)
    # It fits in a Kafka record by less than the dead letter's headers need beside it.
    task = task_of_size(subscription.id, settings.max_record_bytes - 100)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    written: list = []
    producer.produce(endpoint, key=b"k", value=task, on_delivery=lambda error, message: written.append(message))
    assert producer.flush(30) == 0 and written[0].error() is None
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, ["pipeline.dispatcher"], logs):
            with logs_on_failure(logs):
                (letter,) = wait_until(lambda: consume(settings, names.dead_letters, lambda m: True),
                                       timeout_s=60, what="the dead letter")
                wait_until(lambda: consume(settings, names.results, lambda m: codec("delivery_attempt").decode(
                    m.value())["outcome"] == "dead_lettered"), what="the dead_lettered results record")
                attempts = len(receiver.by_path("/big"))
                failing[0] = False
                assert Replayer(settings).redrive(subscription_id=subscription.id) == 1
                wait_until(lambda: len(receiver.by_path("/big")) > attempts, what="the redriven delivery")
    finally:
        receiver.stop()
    headers = dict(letter.headers())
    assert letter.value() == b"" and headers["payload"] == b"reference"
    assert headers["source"] == endpoint.encode() and headers["error"].startswith(b"retry schedule spent after 4")
    assert (headers["source-topic"], headers["source-partition"], headers["source-offset"]) == (
        endpoint.encode(), str(written[0].partition()).encode(), str(written[0].offset()).encode())
    assert headers["source-sha256"] == hashlib.sha256(task).hexdigest().encode()
    assert headers["source-size"] == str(len(task)).encode()
    deliveries = receiver.by_path("/big")
    assert len(deliveries) == attempts + 1 == len(settings.retry_schedule_s) + 1  # 4 failures, then the redrive
    assert json.loads(deliveries[-1].body)["data"] == json.loads(DeliveryTask.from_avro(task).event.data)

