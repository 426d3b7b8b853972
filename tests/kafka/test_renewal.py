"""A writer that has written to many topics gets a new producer at a flush that leaves nothing
waiting: librdkafka's cost per write grows with every topic a producer has written to. Nothing
is lost or reordered by the change."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.kafka.admin import TopicSpec, admin_client, ensure_topics
from pipeline.kafka.resending import ResendingProducer
from pipeline.kafka.writer import KafkaWriter
from tests.polling import wait_until
from tests.topics import every_record


class FakeProducer:
    def __init__(self) -> None:
        self.reports: list[Any] = []
        self.flushed = threading.Event()

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Any, on_delivery: Any) -> None:
        self.reports.append(on_delivery)

    def flush(self, timeout_s: float) -> int:
        self.flushed.set()
        return 0


def test_a_producer_is_renewed_only_when_no_record_waits_for_its_report() -> None:
    made: list[FakeProducer] = []
    producer = ResendingProducer(lambda: made.append(FakeProducer()) or made[-1])
    producer.produce("t", b"k", b"v")

    assert producer.renew() is False and len(made) == 1  # its record would have nobody to report it

    made[0].reports[0](None, None)
    assert producer.renew() is True and len(made) == 2
    wait_until(made[0].flushed.is_set, timeout_s=10, what="the old producer let go of on a thread of its own")
    producer.produce("t", b"k", b"w")
    assert len(made[1].reports) == 1 and len(made[0].reports) == 1


def test_a_renewed_producer_is_freed_on_a_thread_of_its_own() -> None:
    """Freeing one joins its threads, which would hold up the caller: a router's event loop."""
    freed_on: list[str] = []

    def new_producer() -> FakeProducer:
        producer = FakeProducer()
        weakref.finalize(producer, lambda: freed_on.append(threading.current_thread().name))
        return producer

    producer = ResendingProducer(new_producer)
    assert producer.renew() is True
    wait_until(lambda: freed_on, timeout_s=10, what="the old producer freed")
    assert freed_on == ["retiring-producer"]


@pytest.mark.integration
def test_every_record_lands_in_order_across_a_renewal(settings: Settings) -> None:
    topics = [f"{settings.topic_prefix}renewed-{n}" for n in range(3)]
    ensure_topics(admin_client(settings.kafka_bootstrap_servers), [TopicSpec(name=t, partitions=1) for t in topics])
    writer = KafkaWriter(settings, renew_after_topics=2)
    for n in range(3):
        for topic in topics:
            writer.write(topic, b"k", f"{n}".encode())
    first = writer._producer._producer
    writer.flush_now()  # three topics written to, nothing waiting: renewed here

    renewed = writer._producer._producer
    assert renewed is not first
    for n in range(3, 6):
        writer.write(topics[0], b"k", f"{n}".encode())
    writer.flush_now()  # one topic since the renewal: kept
    assert writer._producer._producer is renewed
    assert [record.value for record in every_record(settings, topics[0])] == [f"{n}".encode() for n in range(6)]
    assert [record.value for record in every_record(settings, topics[2])] == [b"0", b"1", b"2"]
