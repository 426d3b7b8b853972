"""A record Kafka did not take stops every later commit: the outbox stays failed (tests/dispatcher/
test_consumer.py shows the consumer then commits nothing)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaError

from pipeline.config import Settings
from pipeline.dispatcher.outbox import Outbox
from pipeline.errors import ServiceError


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
