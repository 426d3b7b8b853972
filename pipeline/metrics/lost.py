"""Records Kafka deleted before a stage's consumer read them (pipeline.kafka.lost), as a counter."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from pipeline.kafka.lost import LostRange, add_loss_listener


def count_lost_records(registry: CollectorRegistry) -> Counter:
    counter = Counter("webhook_records_lost", "Records Kafka deleted before a consumer of this stage read them, "
                      "by consumer (dispatcher, retry-relay, router)", ["consumer"], registry=registry)

    def lost(lost_range: LostRange, consumer: str) -> None:
        counter.labels(consumer).inc(lost_range.count)

    add_loss_listener(lost)
    return counter
