"""A dead letter always fits in Kafka: whole when it can, else a reference to where the original is."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from confluent_kafka import Consumer

from pipeline.config import Settings
from pipeline.kafka.dead_letters import dead_letter
from pipeline.kafka.position import Position
from pipeline.kafka.writer import KafkaWriter
from pipeline.topics import TopicNames
from tests.polling import wait_until

pytestmark = pytest.mark.integration

AT = Position(topic="whk.events", partition=2, offset=40_000)


def read(settings: Settings, count: int) -> list:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "fetch.max.bytes": 4 << 20})
    consumer.subscribe([TopicNames.from_settings(settings).dead_letters])
    found: list = []
    try:
        wait_until(lambda: (m := consumer.poll(0.5)) is not None and m.error() is None and found.append(m)
                   or len(found) >= count, interval_s=0, what=f"{count} dead letters")
    finally:
        consumer.close()
    return found


def test_a_dead_letter_that_fits_keeps_the_payload_and_one_that_does_not_keeps_a_reference(settings) -> None:
    writer = KafkaWriter(settings)
    topic = TopicNames.from_settings(settings).dead_letters
    small, large = b"small payload", bytes(range(256)) * (settings.max_record_bytes // 256)
    assert dead_letter(writer, topic, b"key-1", small, AT, "value: not JSON", [("error-field", b"value")])
    assert not dead_letter(writer, topic, b"key-2", large, AT, "value: not JSON", [("error-field", b"value")])
    huge_key = b"k" * settings.max_record_bytes
    assert not dead_letter(writer, topic, huge_key, b"v", AT, "key: too long")
    writer.flush_now()
    whole, reference, keyless = read(settings, 3)
    assert (whole.key(), whole.value()) == (b"key-1", small)
    assert dict(whole.headers()) == {"error": b"value: not JSON", "error-field": b"value", "source-topic": b"whk.events",
                                     "source-partition": b"2", "source-offset": b"40000"}
    assert (reference.key(), reference.value()) == (b"key-2", b"")
    assert dict(reference.headers()) == dict(whole.headers()) | {
        "payload": b"reference", "source-size": str(len(large)).encode(),
        "source-sha256": hashlib.sha256(large).hexdigest().encode()}
    assert keyless.key() is None and dict(keyless.headers())["payload"] == b"reference"


def test_a_reason_of_any_length_fits(settings) -> None:
    writer = KafkaWriter(settings)
    topic = TopicNames.from_settings(settings).dead_letters
    assert dead_letter(writer, topic, None, b"v", AT, "data: " + "very long " * 200_000)
    writer.flush_now()
    (letter,) = read(settings, 1)
    assert dict(letter.headers())["error"].startswith(b"data: very long")
