"""A KafkaWriter's flush is the gate before a commit: it passes only when every write so far landed."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import pytest
from confluent_kafka import KafkaError

from pipeline.errors import ServiceError
from pipeline.kafka.writer import PATIENCE_S, RECORD_OVERHEAD_BYTES, KafkaWriter, record_size
from pipeline.router.app import FlushBeforeCommit
from pipeline.topics import TopicNames
from pipeline.devstack.ports import free_port
from tests.polling import wait_until

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


def test_a_record_over_the_limit_is_refused_before_kafka_and_nothing_is_committed_after(settings) -> None:
    writer = KafkaWriter(settings)
    topic = TopicNames.from_settings(settings).results
    value = b"x" * (settings.max_record_bytes - RECORD_OVERHEAD_BYTES)
    assert writer.fits(None, value) and not writer.fits(b"k", value)
    with pytest.raises(ServiceError, match="over the limit"):
        writer.write(topic, b"k", value)
    with pytest.raises(ServiceError, match="over the limit"):
        writer.flush_now()  # the record's input must not be committed: the writer stays failed


@pytest.mark.parametrize("key, headers", [
    (None, None),
    (b"k" * 300, None),
    (None, [("error", b"e" * 500), ("source", b"whk.endpoint.sub_1")]),
    (b"key", [(f"h{i}", b"v" * i) for i in range(40)]),
])
def test_every_record_that_fits_is_taken_by_the_producer(settings, key, headers) -> None:
    """fits() never says yes to a record librdkafka would refuse (MSG_SIZE_TOO_LARGE at produce)."""
    writer = KafkaWriter(settings)
    topic = TopicNames.from_settings(settings).results
    largest = settings.max_record_bytes - record_size(key, b"", headers)
    assert writer.fits(key, b"v" * largest, headers) and not writer.fits(key, b"v" * (largest + 1), headers)
    writer.write(topic, key, b"v" * largest, headers)
    writer.flush_now()


def test_a_flush_waits_for_a_broker_away_and_says_so_once(settings, caplog) -> None:
    """It never gives up on the write, nor lets a commit through; tests/e2e/test_chaos.py sees the
    stages carry on once the broker is back."""
    away = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})  # nothing listens
    writer = KafkaWriter(away)
    writer.write(TopicNames.from_settings(away).results, b"k", b"while away")
    flushed, started = threading.Event(), time.monotonic()
    with caplog.at_level(logging.INFO, logger="pipeline.kafka.writer"):
        flushing = threading.Thread(target=_flush, args=(writer, flushed))
        flushing.start()
        wait_until(lambda: "waiting for Kafka to acknowledge 1 records" in caplog.text, timeout_s=30,
                   what="the waiting said")
        wait_until(lambda: caplog.text.count("waiting for Kafka") == 1 and len(writer._producer) == 1 and
                   time.monotonic() > started + 2 * PATIENCE_S, what="a second patience over")
    assert not flushed.is_set() and writer.broken is None
    assert caplog.text.count("waiting for Kafka") == 1
    writer._producer.purge()  # lets the flush end, refused
    flushing.join(10)


def _flush(writer: KafkaWriter, flushed: threading.Event) -> None:
    with contextlib.suppress(ServiceError):
        writer.flush_now()
        flushed.set()
