"""Names of the pipeline's topics, one place, derived from the topic prefix."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Settings


@dataclass(frozen=True, kw_only=True)
class TopicNames:
    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def subscriptions(self) -> str:
        return f"{self.prefix}subscriptions"

    @property
    def results(self) -> str:
        return f"{self.prefix}results"

    @property
    def routing(self) -> str:
        """One record per routing decision, for statistics."""
        return f"{self.prefix}routing"

    @property
    def idempotency(self) -> str:
        """Which events the admin API published under an idempotency key, for the window."""
        return f"{self.prefix}idempotency"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}dead-letters"

    @property
    def dispatcher_shards(self) -> str:
        """Carries no records: its partitions are the shards that dispatchers share in a consumer group."""
        return f"{self.prefix}dispatcher-shards"

    @property
    def dispatcher_wakeups(self) -> str:
        """Doorbells: a subscription id says its endpoint topic just got tasks (pipeline.kafka.wakeups)."""
        return f"{self.prefix}dispatcher-wakeups"

    def retry_tier(self, seconds: int) -> str:
        """Where a failed task of an unordered subscription waits about this long to be retried."""
        return f"{self.prefix}retry.{seconds}"

    def tier_of(self, retry_topic: str) -> int:
        """The delay in seconds of a retry tier topic, from its name."""
        return int(retry_topic.removeprefix(f"{self.prefix}retry."))

    def endpoint(self, subscription_id: str) -> str:
        return f"{self.prefix}endpoint.{subscription_id}"

    def subscription_of(self, endpoint_topic: str) -> str:
        return endpoint_topic.removeprefix(f"{self.prefix}endpoint.")

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicNames:
        return cls(prefix=settings.topic_prefix)
