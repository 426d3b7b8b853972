"""A record Kafka did not take stops every later commit: the outbox stays failed (tests/dispatcher/
test_consumer.py shows the consumer then commits nothing). An attempt's intent is in Kafka before
its request goes out, in the partition its outcome follows it into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.dispatcher.attempt import NO_OUTCOME
from pipeline.dispatcher.outbox import Outbox
from pipeline.errors import ServiceError
from pipeline.kafka.offsets import watermarks


class FailedMessage:
    def topic(self) -> str:
        return "dead-letters"


async def test_a_failed_write_fails_every_later_flush(settings: Settings) -> None:
    outbox = Outbox(settings)
    await outbox.flush()  # nothing failed yet
    outbox._writer._on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), FailedMessage())
    for _ in range(3):
        with pytest.raises(ServiceError, match="dead-letters"):
            await outbox.flush()


@dataclass
class Task:
    value: bytes
    key: bytes | None = b"k"
    topic: str = "endpoint.sub"


def test_a_task_too_large_for_a_delay_topics_headers_is_not_deferred(settings: Settings) -> None:
    outbox = Outbox(settings)
    assert outbox.defer(Task(b"small"), attempt=2, delay_s=1.0)
    assert not outbox.defer(Task(b"x" * (settings.max_record_bytes - 100)), attempt=2, delay_s=1.0)
    assert outbox.broken is None  # nothing was refused: the deliverer keeps that task in its lane


async def test_an_intent_is_in_kafka_when_announce_returns_and_its_outcome_follows_it_in_its_partition(
        settings: Settings) -> None:
    outbox = Outbox(settings)
    intent = {"attempt_id": "a1", "event_id": "evt_1", "event_type": "t", "event_time": datetime.now(timezone.utc),
              "subscription_id": "sub_1", "attempt": 1, "endpoint_host": "h", "started_at": datetime.now(timezone.utc),
              "latency_ms": 0.0, "outcome": "unknown", "error": NO_OUTCOME, "intent": "open", "timeout_ms": 1000}
    await outbox.announce([intent])
    held = _results_ends(settings, outbox.results_topic)  # no flush: what was announced is written
    outbox.attempt(intent | {"intent": "close", "outcome": "success", "status_code": 204, "error": None})
    await outbox.flush()
    ends = _results_ends(settings, outbox.results_topic)

    assert sum(held) == 1 and sum(ends) == 2
    (partition,) = [n for n, end in enumerate(ends) if end == 2]  # the outcome joined its intent's partition
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "outbox-test"})
    consumer.assign([TopicPartition(outbox.results_topic, partition, 0)])
    records = [codec("delivery_attempt").decode(consumer.poll(10).value()) for _ in range(2)]
    consumer.close()
    assert [(r["attempt_id"], r["intent"], r["outcome"]) for r in records] == [("a1", "open", "unknown"),
                                                                             ("a1", "close", "success")]


def _results_ends(settings: Settings, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "outbox-test"})
    try:
        return [watermarks(consumer, TopicPartition(topic, n))[1] for n in range(settings.results_partitions)]
    finally:
        consumer.close()
