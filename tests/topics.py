"""Every record a topic holds, read to the end of each partition, as bytes on the broker."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.kafka.offsets import watermarks


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def bytes(self) -> bytes:
        """Key, value and headers together, to search for a planted value."""
        parts = [self.key or b"", self.value or b""] + [name.encode() + b"=" + (value or b"")
                                                         for name, value in self.headers]
        return b"\n".join(parts)


def every_record(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[RawRecord]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"raw-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        ends = {p: watermarks(consumer, TopicPartition(topic, p))[1] for p in partitions}
        remaining = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        records: list[RawRecord] = []
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            records.append(RawRecord(topic, message.partition(), message.offset(), message.key(), message.value(),
                                     tuple(message.headers() or ())))
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
        assert not remaining, f"{topic}: partitions {remaining} not read to their end within {timeout_s:.0f} s"
        return records
    finally:
        consumer.close()
