"""The endpoint partitions of a set of shards: subscriptions from the table, partition counts from
the broker (a heavy endpoint's topic may have more than one), looked up once per topic."""

from __future__ import annotations

import asyncio
import logging

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from pipeline.dispatcher.records import PartitionId
from pipeline.dispatcher.shards import shard_of
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)
METADATA_TIMEOUT_S = 30.0


class EndpointDirectory:
    def __init__(self, table: SubscriptionTable, names: TopicNames, admin: AdminClient, shards: int):
        self.table = table
        self.names = names
        self.admin = admin
        self.shards = shards
        self._partitions: dict[str, int] = {}  # subscription id: its topic's partition count
        self._shard: dict[str, int] = {}

    def shard(self, subscription_id: str) -> int:
        shard = self._shard.get(subscription_id)
        if shard is None:
            shard = self._shard[subscription_id] = shard_of(subscription_id, self.shards)
        return shard

    def subscriptions_in(self, shards: set[int]) -> list[str]:
        return [subscription_id for subscription_id in self.table.rows if self.shard(subscription_id) in shards]

    async def partitions_of(self, subscription_ids: list[str]) -> list[PartitionId]:
        """Every partition of these subscriptions' topics; a topic not found (yet) is left out."""
        await self._look_up([s for s in subscription_ids if s not in self._partitions])
        return [PartitionId(self.names.endpoint(s), p) for s in subscription_ids for p in range(self._partitions.get(s, 0))]

    def forget(self, subscription_id: str) -> None:
        self._partitions.pop(subscription_id, None)
        self._shard.pop(subscription_id, None)

    async def _look_up(self, subscription_ids: list[str]) -> None:
        """One request for the topics of all these subscriptions, not a listing of every topic."""
        if subscription_ids:
            found = await asyncio.to_thread(self._partition_counts, [self.names.endpoint(s) for s in subscription_ids])
            for subscription_id in subscription_ids:
                if (count := found.get(self.names.endpoint(subscription_id))):
                    self._partitions[subscription_id] = count

    def _partition_counts(self, topics: list[str]) -> dict[str, int]:
        futures = self.admin.describe_topics(TopicCollection(topics), request_timeout=METADATA_TIMEOUT_S)
        counts = {}
        for topic, future in futures.items():
            try:
                counts[topic] = len(future.result().partitions)
            except KafkaException as exc:  # not there (yet): looked for again later
                log.debug("endpoint topic %s: %s", topic, exc)
        return counts
