"""Which dispatcher owns which endpoints.

An endpoint (every partition of its topic) belongs to one shard, by a hash of its subscription
id; the shards are the partitions of a small control topic, which the dispatchers share through
an ordinary consumer group with incremental (cooperative) rebalancing. A dispatcher owns the
endpoints of the shards it is assigned and assigns their partitions to itself by hand.

So adding or deleting an endpoint involves no group at all: the dispatcher that owns its shard
starts or stops fetching it, and nobody else notices. Only a dispatcher coming or going moves
shards, and then only the shards that move pause, for as long as their in-flight deliveries take
to finish (or, for a dispatcher that died, the session timeout). One owner per endpoint also
makes its rate limit, in-flight cap, Retry-After hold and failure streak true per endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable

from pipeline.config import Settings
from pipeline.kafka.threaded import ThreadedConsumer, in_loop
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)
ShardsChanged = Callable[[set[int]], Awaitable[None]]
POLL_S = 0.2


def shard_of(subscription_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike Python's hash)."""
    return zlib.crc32(subscription_id.encode()) % shards


class ShardMembership:
    """Membership in the dispatchers' group over the shard topic: calls `gained` with the shards
    assigned to this dispatcher and `released` with those taken away, waiting for each; `lost`
    when the group went on without us (our session expired), so whoever owns them now must not
    be overwritten."""

    def __init__(self, settings: Settings, *, gained: ShardsChanged, released: ShardsChanged, lost: ShardsChanged):
        self.topic = TopicNames.from_settings(settings).dispatcher_shards
        self._handlers = {"gained": gained, "released": released, "lost": lost}
        self._consumer = ThreadedConsumer({
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"{settings.topic_prefix}dispatchers",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": settings.dispatcher_session_timeout_ms,
            "heartbeat.interval.ms": max(100, settings.dispatcher_session_timeout_ms // 10),
            "enable.auto.commit": False,
        }, name="dispatcher-shards")

    async def run(self, stopping: asyncio.Event) -> None:
        """Takes part until stopping is set, then leaves, releasing every shard on the way out."""
        loop = asyncio.get_running_loop()
        await self._consumer.call(self._consumer.raw.subscribe, [self.topic],
                                  on_assign=in_loop(loop, self._on("gained")),
                                  on_revoke=in_loop(loop, self._on("released")),
                                  on_lost=in_loop(loop, self._on("lost")))
        try:
            while not stopping.is_set():
                await self._consumer.call(self._consumer.raw.poll, POLL_S)  # serves the callbacks
        finally:
            await self._consumer.close()

    def _on(self, event: str) -> Callable[..., Awaitable[None]]:
        async def handle(_consumer: object, partitions: list) -> None:
            shards = {partition.partition for partition in partitions}
            if shards:
                log.info("shards %s: %s", event, sorted(shards))
                await self._handlers[event](shards)
        return handle
