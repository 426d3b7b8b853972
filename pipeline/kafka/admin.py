"""Topic creation and broker readiness, through the confluent-kafka admin client.

Topics are always created explicitly, with the partitions and configs they need:
nothing relies on broker-side auto-creation.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.clients import LIBRDKAFKA_LOG
from pipeline.kafka.retention import align_configs, backlog_config
from pipeline.topics import TopicNames


@dataclass(frozen=True, kw_only=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def admin_client(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 5000, "logger": LIBRDKAFKA_LOG})


def broker_answers(bootstrap_servers: str, timeout_s: float = 2.0) -> bool:
    """Ready means an admin metadata request succeeds, not merely that the port is open."""
    if not _port_open(bootstrap_servers.split(",")[0]):
        return False  # spares librdkafka's reconnect log lines while a broker is starting
    try:
        metadata = admin_client(bootstrap_servers).list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def _port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_broker(bootstrap_servers: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if broker_answers(bootstrap_servers):
            return
        time.sleep(0.25)
    raise ServiceError(f"no Kafka broker answered at {bootstrap_servers} within {timeout_s:.0f} s")


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], timeout_s: float = 30.0) -> None:
    """Creates the topics that do not exist yet; existing ones get the configs their specs name
    (their partitions are left as they are)."""
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    align_configs(admin, {spec.name: spec.config for spec in specs if spec.name in existing})
    wanted = [
        NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=1, config=spec.config)
        for spec in specs
        if spec.name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ServiceError(f"could not create topic {name}: {exc}") from exc
    _wait_for_leaders(admin, [topic.topic for topic in wanted], timeout_s)


DELETE_BATCH = 1000


def delete_topics_with_prefix(bootstrap_servers: str, prefix: str, timeout_s: float = 30.0) -> None:
    """Deletes every topic whose name starts with prefix: a test's or a benchmark's own, at its end."""
    admin = admin_client(bootstrap_servers)
    delete_topics(admin, [name for name in admin.list_topics(timeout=timeout_s).topics if name.startswith(prefix)],
                  timeout_s)


def delete_topics(admin: AdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Best effort: a topic already gone, or one the broker is still deleting, is fine."""
    # The controller refuses a deletion of more than 10,000 partitions in one request.
    for start in range(0, len(names), DELETE_BATCH):
        for future in admin.delete_topics(names[start:start + DELETE_BATCH], operation_timeout=timeout_s).values():
            try:
                future.result()
            except KafkaException:
                pass


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Creation returns before partitions have leaders; until they do, clients get NOT_LEADER errors."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout_s).topics
        if all(name in topics and topics[name].partitions and
               all(p.leader >= 0 for p in topics[name].partitions.values()) for name in names):
            return
        time.sleep(0.05)
    raise ServiceError(f"topics {names} had no leaders within {timeout_s:.0f} s")


# Delay topics for unordered subscriptions (Uber's pattern). A task in a tier is held exactly that
# tier's delay after it was written, so each partition's tasks come due in the order they arrived
# and the relay never waits on one while a later one is due; a task due later than that goes on
# to the tier for what remains. The tiers hold the default retry schedule's steps, and are close
# enough that any wait up to a day passes through a handful of them.
WAKEUP_PARTITIONS = 4
RETRY_TIERS_S = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 18000, 36000, 86400)


def retry_tier(remaining_s: float) -> int | None:
    """The tier a task due in remaining_s waits in next: the longest not past it, or None when less
    than the shortest tier remains (the task then waits that shortest one)."""
    fitting = [tier for tier in RETRY_TIERS_S if tier <= remaining_s]
    return fitting[-1] if fitting else None


def core_topics(settings: Settings) -> list[TopicSpec]:
    names = TopicNames.from_settings(settings)
    backlog = backlog_config(settings)  # what is not delivered yet must not expire on a default schedule
    return [
        TopicSpec(name=names.events, partitions=settings.events_partitions),
        # A change that lost a race is ignored by every reader, and its writer rewrites the winner
        # at once so the winner is the last record again; compaction waits a day, so it can never
        # keep only the loser, even if that writer died in between and the rewrite waits for a restart.
        TopicSpec(
            name=names.subscriptions,
            partitions=1,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": str(24 * 3600 * 1000)},
        ),
        TopicSpec(name=names.results, partitions=settings.results_partitions),
        TopicSpec(name=names.routing, partitions=settings.results_partitions),
        TopicSpec(name=names.dead_letters, partitions=1, config=backlog),
        TopicSpec(name=names.dispatcher_shards, partitions=settings.dispatcher_shards),
        # Every dispatcher reads every doorbell, so a few partitions; a doorbell matters for seconds.
        TopicSpec(name=names.dispatcher_wakeups, partitions=WAKEUP_PARTITIONS, config={"retention.ms": "3600000"}),
        *(TopicSpec(name=names.retry_tier(tier), partitions=settings.results_partitions, config=backlog)
          for tier in RETRY_TIERS_S),
    ]


def endpoint_topic(settings: Settings, subscription_id: str, partitions: int | None = None) -> TopicSpec:
    """partitions: the subscription's own choice, or the setting's default."""
    name = TopicNames.from_settings(settings).endpoint(subscription_id)
    return TopicSpec(name=name, partitions=partitions or settings.endpoint_partitions, config=backlog_config(settings))


def ensure_core_topics(settings: Settings) -> None:
    ensure_topics(admin_client(settings.kafka_bootstrap_servers), core_topics(settings))
