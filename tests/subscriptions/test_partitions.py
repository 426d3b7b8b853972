"""A heavy endpoint may be made with more partitions; only at creation, since more later would
move ordering keys between partitions and break their order."""

from __future__ import annotations

import pytest

from pipeline.config import Settings
from pipeline.errors import InvalidInput
from pipeline.kafka.admin import admin_client
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.snapshot import Snapshot
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.polling import wait_until

HOOK = {"name": "heavy", "url": "https://example.test/hook", "event_types": ["*"]}


def commands_for(settings: Settings) -> SubscriptionCommands:
    snapshot = Snapshot(settings)
    return SubscriptionCommands(SubscriptionWriter(settings), snapshot.get, snapshot.settle)


def topic_partitions(settings: Settings, subscription_id: str) -> int:
    topic = TopicNames.from_settings(settings).endpoint(subscription_id)
    admin = admin_client(settings.kafka_bootstrap_servers)
    return wait_until(lambda: len(admin.list_topics(topic, timeout=10).topics[topic].partitions), timeout_s=10,
                      what="the endpoint topic in the broker's metadata")


@pytest.mark.integration
def test_a_heavy_endpoint_gets_its_partitions_and_keeps_them(settings: Settings) -> None:
    commands = commands_for(settings)
    heavy = commands.create(HOOK | {"partitions": 6})
    plain = commands.create(HOOK)
    assert topic_partitions(settings, heavy.id) == 6 and heavy.partitions == 6
    assert topic_partitions(settings, plain.id) == settings.endpoint_partitions and plain.partitions is None
    with pytest.raises(InvalidInput) as refused:
        commands_for(settings).update(heavy.id, {"partitions": 8})
    assert refused.value.field == "partitions" and "created" in refused.value.problem
    assert commands_for(settings).update(heavy.id, {"partitions": 6, "name": "still heavy"}).partitions == 6


@pytest.mark.parametrize("partitions", [0, 65, "many"])
def test_partitions_out_of_range_are_refused(settings: Settings, partitions: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        commands_for(settings).create(HOOK | {"partitions": partitions})
    assert refused.value.field == "partitions"
