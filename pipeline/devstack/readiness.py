"""When the broker can serve the stages, and when the stages serve.

A broker answers metadata requests before it can do everything else: right after it starts, the
group coordinator is still loading its offsets partitions and partitions are still getting their
leaders. A stage started then logs ERROR lines (GroupCoordinatorNotAvailableError,
NotLeaderForPartitionError) while its client retries, so `make run` waits for both first.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient, OffsetSpec

from pipeline.config import Settings
from pipeline.devstack.stages import StageSpec
from pipeline.errors import ServiceError
from pipeline.kafka.admin import admin_client
from pipeline.kafka.offsets import list_offsets

PROBE_TIMEOUT_S = 5.0


def wait_until_serving(settings: Settings, groups: Iterable[str], timeout_s: float = 90.0) -> None:
    """Until every partition of the pipeline's topics has a leader answering offset requests, and
    the coordinators of these consumer groups answer."""
    admin = admin_client(settings.kafka_bootstrap_servers)
    groups = list(groups)
    deadline = time.monotonic() + timeout_s
    while not (_partitions_answer(admin, settings.topic_prefix) and _coordinators_answer(admin, groups)):
        if time.monotonic() > deadline:
            raise ServiceError(f"Kafka at {settings.kafka_bootstrap_servers} did not serve the pipeline's "
                               f"partitions and consumer groups within {timeout_s:.0f} s")
        time.sleep(0.2)


def _partitions_answer(admin: AdminClient, prefix: str) -> bool:
    topics = admin.list_topics(timeout=PROBE_TIMEOUT_S).topics
    partitions = [(name, partition) for name, topic in topics.items() if name.startswith(prefix)
                  for partition in topic.partitions]
    if not partitions:
        return True
    return not list_offsets(admin, partitions, OffsetSpec.latest(), PROBE_TIMEOUT_S)[1]


def _coordinators_answer(admin: AdminClient, groups: list[str]) -> bool:
    # Describing a group that does not exist yet still asks its coordinator (which makes the broker
    # create its offsets topic on a first start) and fails until that coordinator has loaded.
    return not groups or _all_succeed(admin.describe_consumer_groups(groups, request_timeout=PROBE_TIMEOUT_S).values())


def _all_succeed(futures: Iterable) -> bool:
    try:
        for future in futures:
            future.result()
    except KafkaException:
        return False
    return True


def not_ready(settings: Settings, stages: Iterable[StageSpec], admin: AdminClient) -> list[str]:
    """The stages not serving yet: a port that does not answer, or a consumer group without members."""
    stages = list(stages)
    groups = {stage.groups(settings.topic_prefix)[0]: stage.name for stage in stages if stage.group_suffixes}
    waiting = [stage.name for stage in stages
               if stage.port_setting and not port_answers(getattr(settings, stage.port_setting))]
    if not groups:  # only the API runs (the others are skipped)
        return waiting
    try:
        descriptions = admin.describe_consumer_groups(list(groups), request_timeout=PROBE_TIMEOUT_S)
        for group, future in descriptions.items():
            description = future.result()
            if description.state != ConsumerGroupState.STABLE or not description.members:
                waiting.append(groups[group])
    except KafkaException:
        waiting.extend(name for name in groups.values() if name not in waiting)
    return sorted(set(waiting))


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False
