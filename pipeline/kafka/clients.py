"""Configuration of the pipeline's Kafka producers and consumers."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Producer

from pipeline.config import Settings

LIBRDKAFKA_LOG = logging.getLogger("librdkafka")


def reliable_producer(settings: Settings, **overrides: Any) -> Producer:
    """Idempotent, acks=all: a published message is never duplicated by a client retry nor lost.

    Keys are partitioned with murmur2, as Java clients and aiokafka (the router's faust producer)
    do: a key lands in the same partition whoever writes it, so a replayed or test task joins
    its key's lane, and events from any Kafka client keep their order per key."""
    config = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
        # Writers check sizes against this same limit before they write (see KafkaWriter.fits).
        "message.max.bytes": settings.max_record_bytes,
        # librdkafka's own lines (a broker going away, say) go through logging, formatted and
        # filtered like every other line, instead of straight to stderr.
        "logger": LIBRDKAFKA_LOG,
    }
    config.update(overrides)
    return Producer(config)


def flush_or_raise(producer: Producer, timeout_s: float = 30.0) -> None:
    from pipeline.errors import ServiceError

    remaining = producer.flush(timeout_s)
    if remaining:
        raise ServiceError(f"{remaining} messages were not acknowledged by Kafka within {timeout_s:.0f} s")
