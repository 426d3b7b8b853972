"""A KafkaWriter's flush is the gate before a commit: it passes only when every write so far landed."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from pipeline.errors import ServiceError
from pipeline.kafka.writer import KafkaWriter
from pipeline.router.app import FlushBeforeCommit
from pipeline.topics import TopicNames

pytestmark = pytest.mark.integration


class _Message:
    def topic(self) -> str:
        return "some-topic"


def test_writes_flush_and_a_failed_one_fails_every_later_flush(settings) -> None:
    writer = KafkaWriter(settings)
    writer.write(TopicNames.from_settings(settings).results, b"k", b"v", [("h", b"1")])
    writer.flush_now()  # acknowledged: the gate opens
    writer._on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), _Message())
    for _ in range(2):
        with pytest.raises(ServiceError, match="some-topic"):
            writer.flush_now()


def test_the_router_flushes_before_faust_picks_offsets_and_refuses_after_a_failure(settings) -> None:
    writer = KafkaWriter(settings)
    sensor = FlushBeforeCommit(writer)
    writer.write(TopicNames.from_settings(settings).results, b"k", b"v")
    sensor.on_commit_initiated(consumer=None)
    assert writer._producer.flush(0) == 0  # nothing was left queued
    writer._on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), _Message())
    with pytest.raises(ServiceError):
        sensor.on_commit_initiated(consumer=None)
