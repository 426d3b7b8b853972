"""list_offsets asks in chunks (librdkafka groups one call's partitions in quadratic time) and
still answers for every partition, the failed ones apart."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import OffsetSpec

from pipeline.config import Settings
from pipeline.kafka import offsets
from pipeline.kafka.admin import TopicSpec, admin_client, ensure_topics
from pipeline.kafka.offsets import LIST_OFFSETS_CHUNK, list_offsets


class _Admin:
    """Answers each partition with its number as the offset, but refuses partition 7."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def list_offsets(self, wanted, request_timeout):  # type: ignore[no-untyped-def]
        self.asked.append(len(wanted))
        answers = {}
        for tp in wanted:
            answers[tp] = future = Future()
            if tp.partition == 7:
                future.set_exception(KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)))
            else:
                future.set_result(SimpleNamespace(offset=tp.partition))
        return answers


def test_many_partitions_are_asked_for_in_chunks_and_every_answer_is_kept() -> None:
    admin = _Admin()
    places = [("t", n) for n in range(2 * LIST_OFFSETS_CHUNK + 1)]

    found, failed = list_offsets(admin, places + places[:3], OffsetSpec.latest(), 5)  # type: ignore[arg-type]

    assert admin.asked == [LIST_OFFSETS_CHUNK, LIST_OFFSETS_CHUNK, 1]
    assert set(failed) == {("t", 7)}
    assert found == {place: place[1] for place in places if place != ("t", 7)}


def test_nothing_asked_answers_nothing() -> None:
    admin = _Admin()
    assert list_offsets(admin, [], OffsetSpec.latest(), 5) == ({}, {})  # type: ignore[arg-type]
    assert admin.asked == []


@pytest.mark.integration
def test_chunks_asked_of_a_real_broker_answer_each_partitions_end(settings: Settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offsets, "LIST_OFFSETS_CHUNK", 2)
    topic = f"{settings.topic_prefix}chunked"
    admin = admin_client(settings.kafka_bootstrap_servers)
    ensure_topics(admin, [TopicSpec(name=topic, partitions=5)])
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for partition in range(5):
        for _ in range(partition):
            producer.produce(topic, b"x", partition=partition)
    assert producer.flush(10) == 0

    found, failed = list_offsets(admin, [(topic, p) for p in range(5)], OffsetSpec.latest(), 10)

    assert failed == {}
    assert found == {(topic, p): p for p in range(5)}
