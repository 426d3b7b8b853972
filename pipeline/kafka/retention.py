"""Topic configs kept as the pipeline declares them, also on topics that existed before.

What is not delivered yet (an endpoint topic's backlog, retries waiting in the delay topics, dead
letters waiting for a redrive) must not expire on the broker's default schedule (168 h): those
topics take the backlog horizon (`PIPELINE_BACKLOG_HORIZON_DAYS`, time retention off unless set).
Topics made before a config was declared get it when a stage starts: one describe and one alter
request for all of them, whatever their number.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from pipeline.config import Settings

log = logging.getLogger(__name__)
KEPT = "-1"  # Kafka's retention.ms for "no time limit"
TIMEOUT_S = 30.0


def backlog_config(settings: Settings) -> dict[str, str]:
    """The config of a topic holding what is not delivered yet."""
    if settings.backlog_horizon_days is None:
        return {"retention.ms": KEPT}
    return {"retention.ms": str(int(settings.backlog_horizon_days * 86_400_000))}


def align_configs(admin: AdminClient, wanted: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Sets the declared configs on existing topics where they differ; the topics changed.
    Best effort: a broker that refuses is logged, and the topics keep what they had."""
    wanted = {topic: config for topic, config in wanted.items() if config}
    if not wanted:
        return []
    try:
        differing = _differing(admin, wanted)
        if differing:
            _alter(admin, differing)
    except KafkaException as exc:
        log.warning("could not align the configs of %d topics: %s", len(wanted), exc)
        return []
    for topic, config in differing.items():
        log.info("topic %s: config set to %s", topic, config)
    return sorted(differing)


def _differing(admin: AdminClient, wanted: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ResourceType.TOPIC, topic) for topic in wanted]
    described = admin.describe_configs(resources, request_timeout=TIMEOUT_S)
    differing = {}
    for resource, future in described.items():
        current = future.result()
        changes = {key: value for key, value in wanted[resource.name].items()
                   if key not in current or current[key].value != value}
        if changes:
            differing[resource.name] = changes
    return differing


def _alter(admin: AdminClient, changes: Mapping[str, Mapping[str, str]]) -> None:
    resources = [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET) for key, value in config.items()])
        for topic, config in changes.items()]
    for future in admin.incremental_alter_configs(resources, request_timeout=TIMEOUT_S).values():
        future.result()
