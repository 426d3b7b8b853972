"""A one-off read of the whole subscriptions topic, for short-lived processes like the CLI."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.clients import LIBRDKAFKA_LOG
from pipeline.kafka.offsets import watermarks
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import SecretBox, load_box
from pipeline.subscriptions.records import apply_record
from pipeline.topics import TopicNames


def read_snapshot(settings: Settings, timeout_s: float = 15.0) -> dict[str, Subscription]:
    topic = TopicNames.from_settings(settings).subscriptions
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": "snapshot-reader",  # required by the client; nothing is committed
        "enable.auto.commit": False,
        "logger": LIBRDKAFKA_LOG,
    })
    try:
        return _read_to_end(consumer, topic, load_box(settings), timeout_s)
    finally:
        consumer.close()


def _read_to_end(consumer: Consumer, topic: str, box: SecretBox, timeout_s: float) -> dict[str, Subscription]:
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    if metadata.error is not None:
        raise ServiceError(f"cannot read {topic}: {metadata.error}")
    ends = {}
    for partition_id in metadata.partitions:
        _, high = watermarks(consumer, TopicPartition(topic, partition_id), timeout_s)
        ends[partition_id] = high
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p, end in ends.items() if end > 0])
    table: dict[str, Subscription] = {}
    remaining = {p for p, end in ends.items() if end > 0}
    deadline = time.monotonic() + timeout_s
    while remaining:
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out reading {topic}")
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        apply_record(table, message.key(), message.value(), box)
        if message.offset() + 1 >= ends[message.partition()]:
            remaining.discard(message.partition())
    return table
