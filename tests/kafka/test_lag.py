"""A group's lag: end minus committed (or minus the log start), and the oldest pending record's time."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline.config import Settings
from pipeline.kafka.admin import TopicSpec, admin_client, ensure_topics
from pipeline.kafka.lag import GroupLag

pytestmark = pytest.mark.integration
BASE_MS = 1_700_000_000_000


def test_lag_counts_from_the_committed_offset_and_dates_the_record_there(settings: Settings) -> None:
    topic, group = f"{settings.topic_prefix}lagged", f"{settings.topic_prefix}lag-group"
    quiet = f"{settings.topic_prefix}quiet"
    admin = admin_client(settings.kafka_bootstrap_servers)
    ensure_topics(admin, [TopicSpec(name=topic, partitions=2), TopicSpec(name=quiet, partitions=1)])
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for partition in (0, 1):
        for n in range(10):  # each record a second older than the next
            producer.produce(topic, b"x", partition=partition, timestamp=BASE_MS + partition * 100_000 + n * 1000)
    producer.flush(10)
    _commit(settings, group, [TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 10)])

    lag = GroupLag(admin, settings.kafka_bootstrap_servers, group)
    found = lag.read([topic, quiet, f"{settings.topic_prefix}missing"])

    assert set(found) == {topic, quiet}
    assert (found[topic].pending, found[topic].oldest_ms) == (7, BASE_MS + 3000)
    assert (found[quiet].pending, found[quiet].oldest_ms) == (0, None)
    assert lag.read([topic], oldest=False)[topic].oldest_ms is None
    # A group that committed nothing has every record pending, the log's first one the oldest.
    fresh = GroupLag(admin, settings.kafka_bootstrap_servers, f"{group}-fresh").read([topic])[topic]
    assert (fresh.pending, fresh.oldest_ms) == (20, BASE_MS)


def _commit(settings: Settings, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
