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
from pipeline.subscriptions.writer import Position
from pipeline.topics import TopicNames


class Snapshot:
    """The topic as read once; read again after each write of its own (`settle`), which answers
    whether that write applied. For SubscriptionCommands in short-lived processes."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.rows = read_snapshot(settings)

    def get(self, subscription_id: str) -> Subscription | None:
        return self.rows.get(subscription_id)

    def settle(self, position: Position) -> bool:
        self.rows, outcomes = _read(self.settings)
        return outcomes.get(position, False)


def read_snapshot(settings: Settings, timeout_s: float = 15.0) -> dict[str, Subscription]:
    return _read(settings, timeout_s)[0]


def _read(settings: Settings, timeout_s: float = 15.0) -> tuple[dict[str, Subscription], dict[Position, bool]]:
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


def _read_to_end(consumer: Consumer, topic: str, box: SecretBox,
                 timeout_s: float) -> tuple[dict[str, Subscription], dict[Position, bool]]:
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    if metadata.error is not None:
        raise ServiceError(f"cannot read {topic}: {metadata.error}")
    ends = {}
    for partition_id in metadata.partitions:
        _, high = watermarks(consumer, TopicPartition(topic, partition_id), timeout_s)
        ends[partition_id] = high
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p, end in ends.items() if end > 0])
    table: dict[str, Subscription] = {}
    outcomes: dict[Position, bool] = {}
    remaining = {p for p, end in ends.items() if end > 0}
    deadline = time.monotonic() + timeout_s
    while remaining:
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out reading {topic}")
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        position = Position(message.partition(), message.offset())
        outcomes[position] = apply_record(table, message.key(), message.value(), box)
        if message.offset() + 1 >= ends[message.partition()]:
            remaining.discard(message.partition())
    return table, outcomes
