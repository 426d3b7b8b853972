"""A producer stuck while the broker answers is replaced, and what it held is written in order.

librdkafka's stuck state (a partition's leader lost from its metadata for good after a broker
restart) cannot be brought about at will; a producer aimed at a port where nothing listens
stands in for it: it holds every record and never writes one, while the real broker answers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError

from pipeline.config import Settings
from pipeline.devstack.ports import free_port
from pipeline.kafka.acked import AcknowledgedProducer, Outgoing
from pipeline.kafka.admin import TopicSpec, admin_client, ensure_topics
from pipeline.kafka.clients import reliable_producer
from pipeline.kafka.resending import ResendingProducer
from pipeline.kafka.stuck import StuckWatch
from pipeline.kafka.writer import KafkaWriter
from tests.polling import wait_until
from tests.topics import every_record


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


LONG_AGO = 0.0


def test_a_broker_away_is_never_taken_for_a_stuck_producer() -> None:
    clock, answers = Clock(), [False]
    watch = StuckWatch(lambda: answers[0], after_s=30, look_every_s=5, clock=clock)
    for _ in range(100):
        clock.now += 5
        assert not watch.stuck(LONG_AGO)
    answers[0] = True  # back: it must answer for 30 s on end, with nothing acknowledged
    seen = []
    for _ in range(7):
        clock.now += 5
        seen.append(watch.stuck(LONG_AGO))
    assert seen == [False] * 6 + [True]


def test_a_younger_oldest_record_or_a_broker_gone_again_starts_the_count_over() -> None:
    clock, answers = Clock(), [True]
    watch = StuckWatch(lambda: answers[0], after_s=30, look_every_s=5, clock=clock)
    assert not watch.stuck(LONG_AGO)
    clock.now += 25
    oldest_produced = clock.now  # the older ones were acknowledged
    clock.now += 10
    assert not watch.stuck(oldest_produced)
    clock.now += 15
    assert not watch.stuck(oldest_produced)  # 50 s answering, but it has waited 25 s
    clock.now += 5
    assert watch.stuck(oldest_produced)
    answers[0] = False
    clock.now += 5
    assert not watch.stuck(LONG_AGO)
    answers[0] = True
    for _ in range(6):
        clock.now += 5
        assert not watch.stuck(LONG_AGO)  # counted from its first answer after the gap
    clock.now += 5
    assert watch.stuck(LONG_AGO)


def test_the_broker_is_asked_at_most_once_per_look_and_never_while_records_flow() -> None:
    clock, asked = Clock(), []
    watch = StuckWatch(lambda: asked.append(clock.now) or True, after_s=30, look_every_s=5, clock=clock)
    for _ in range(50):
        watch.stuck(LONG_AGO)
        clock.now += 1
    assert asked == [100.0 + 5 * n for n in range(10)]
    for _ in range(50):
        watch.stuck(waiting_since=clock.now - 1)
        clock.now += 1
    assert len(asked) == 10


class FakeProducer:
    """Holds what it is given and reports only when told to: the unit seam of ResendingProducer."""

    def __init__(self) -> None:
        self.produced: list[tuple[bytes, Any]] = []
        self.purged = False

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Any, on_delivery: Any) -> None:
        self.produced.append((value, on_delivery))

    def report(self, value: bytes) -> None:
        on_delivery = next(report for produced, report in self.produced if produced == value)
        on_delivery(None, None)

    def purge(self) -> None:
        self.purged = True

    def poll(self, timeout_s: float) -> int:
        for _, on_delivery in self.produced:  # a purged producer reports everything it held, failed
            on_delivery(KafkaError(KafkaError._PURGE_QUEUE), None)
        return 0


def test_a_replacement_resends_what_waits_in_order_and_the_old_producers_reports_are_ignored() -> None:
    made: list[FakeProducer] = []
    producer = ResendingProducer(lambda: made.append(FakeProducer()) or made[-1])
    told: list[tuple[bytes, Any]] = []
    for value in (b"a", b"b", b"c", b"d"):
        producer.produce("t", b"k", value, on_delivery=lambda error, _, v=value: told.append((v, error)))
    made[0].report(b"b")
    made[0].report(b"a")
    before = time.monotonic()
    assert producer.waiting_since() <= before and producer.unreported == 2  # c, the oldest still waiting

    assert producer.replace() == 2
    assert made[0].purged and [value for value, _ in made[1].produced] == [b"c", b"d"]
    assert producer.waiting_since() >= before  # counted from the replacement
    made[1].report(b"d")
    made[1].report(b"c")
    assert told == [(b"b", None), (b"a", None), (b"d", None), (b"c", None)]  # the purge told nobody
    assert producer.unreported == 0


def _one_partition_topic(settings: Settings, name: str) -> str:
    ensure_topics(admin_client(settings.kafka_bootstrap_servers), [TopicSpec(name=name, partitions=1)])
    return name


class FirstProducerStuck:
    """Mixed into a writer: the first producer it makes is aimed at a port where nothing listens,
    later ones at the broker."""
    _settings: Settings
    _overrides: dict
    producers_made = 0

    def _new_producer(self) -> Any:
        self.producers_made += 1
        nowhere = self._settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
        return reliable_producer(nowhere if self.producers_made == 1 else self._settings, **self._overrides)


def watch_of(writer: Callable[[], FirstProducerStuck | None]) -> StuckWatch:
    """Sees the broker answer only while the writer's stuck producer is in use: a working one is
    never replaced, however long its first acknowledgement takes on a broker just started (a
    second replacement would write what the first had sent again, as it may)."""
    return StuckWatch(lambda: (made := writer()) is not None and made.producers_made == 1,
                      after_s=1.0, look_every_s=0.2)


class StuckFirstWriter(FirstProducerStuck, KafkaWriter):
    pass


class StuckFirstAcknowledgedProducer(FirstProducerStuck, AcknowledgedProducer):
    pass


@pytest.mark.integration
def test_a_writer_replaces_a_stuck_producer_and_writes_what_it_held_in_order(settings: Settings, caplog) -> None:
    topic = _one_partition_topic(settings, f"{settings.topic_prefix}stuck-writer")
    writer: StuckFirstWriter | None = None
    writer = StuckFirstWriter(settings, watch_of(lambda: writer), **{"linger.ms": 5})
    for n in range(200):
        writer.write(topic, b"one-key", str(n).encode())
    flushed = threading.Event()
    with caplog.at_level(logging.WARNING, logger="pipeline.kafka.resending"):
        threading.Thread(target=lambda: (writer.flush_now(), flushed.set()), daemon=True).start()
        wait_until(flushed.is_set, timeout_s=60, what="the flush to end")
    assert "writing the 200 waiting again through a new producer" in caplog.text
    writer.write(topic, b"one-key", b"after")
    writer.flush_now()
    assert [r.value for r in every_record(settings, topic)] == [str(n).encode() for n in range(200)] + [b"after"]
    assert writer.broken is None


@pytest.mark.integration
def test_an_acknowledged_producer_replaces_a_stuck_producer_and_its_callers_never_notice(settings: Settings) -> None:
    topic = _one_partition_topic(settings, f"{settings.topic_prefix}stuck-acked")
    producer: StuckFirstAcknowledgedProducer | None = None

    async def send_all() -> None:
        nonlocal producer
        producer = StuckFirstAcknowledgedProducer(settings, watch_of(lambda: producer), **{"linger.ms": 0})
        await asyncio.gather(*(producer.send([Outgoing(topic, b"one-key", f"{n}-{i}".encode()) for i in range(3)])
                               for n in range(50)))
        await producer.send([Outgoing(topic, b"one-key", b"after")])

    asyncio.run(asyncio.wait_for(send_all(), timeout=60))
    expected = [f"{n}-{i}".encode() for n in range(50) for i in range(3)] + [b"after"]
    assert [r.value for r in every_record(settings, topic)] == expected
