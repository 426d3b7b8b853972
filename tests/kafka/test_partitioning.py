"""Every producer of the pipeline puts a key in the partition the router's producer would."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from pipeline.kafka.admin import TopicSpec, admin_client, ensure_topics
from pipeline.kafka.clients import flush_or_raise, reliable_producer

pytestmark = pytest.mark.integration
PARTITIONS = 8


def test_keys_land_where_aiokafka_puts_them(settings):
    topic = f"{settings.topic_prefix}partitioning"
    ensure_topics(admin_client(settings.kafka_bootstrap_servers), [TopicSpec(name=topic, partitions=PARTITIONS)])
    keys = [f"key-{n}".encode() for n in range(200)] + [b"sub_2f1c9a", "ключ".encode()]
    landed: dict[bytes, int] = {}
    producer = reliable_producer(settings)
    for key in keys:
        producer.produce(topic, key=key, value=b"x",
                         on_delivery=lambda error, message: landed.__setitem__(message.key(), message.partition()))
    flush_or_raise(producer)
    everyone = list(range(PARTITIONS))
    expected = {key: DefaultPartitioner()(key, everyone, everyone) for key in keys}
    assert landed == expected
    assert len(set(landed.values())) == PARTITIONS  # the keys did spread: the check compared something
