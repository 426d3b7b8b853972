"""Endpoint topics made ahead: a new subscription takes an id whose topic exists already, the
pool fills again, and what nobody took is deleted when the API stops."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from pipeline.api.app import create_app
from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.admin import TopicSpec, admin_client
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.snapshot import Snapshot
from pipeline.subscriptions.topic_pool import TopicPool
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.polling import wait_until

HOOK = {"name": "pooled", "url": "https://example.test/hook", "event_types": ["*"]}
TOKEN = "pool-admin"


def endpoint_topics(settings: Settings) -> dict[str, int]:
    """Endpoint topic name: its partition count, as the broker has them now."""
    prefix = TopicNames.from_settings(settings).endpoint("")
    topics = admin_client(settings.kafka_bootstrap_servers).list_topics(timeout=10).topics
    return {name: len(topic.partitions) for name, topic in topics.items() if name.startswith(prefix)}


def endpoint_topics_once(settings: Settings, count: int) -> dict[str, int]:
    """The endpoint topics once there are count of them: the broker's metadata shows a topic a
    moment after its creation was acknowledged."""
    def counted() -> dict[str, int] | None:
        topics = endpoint_topics(settings)
        return topics if len(topics) == count else None

    return wait_until(counted, timeout_s=30, what=f"{count} endpoint topics in the broker's metadata")


@pytest.fixture
def writer(settings: Settings) -> Iterator[SubscriptionWriter]:
    writer = SubscriptionWriter(settings, topic_pool=3)
    yield writer
    writer.close()


@pytest.fixture
def filled(settings: Settings, writer: SubscriptionWriter) -> tuple[dict[str, int], Snapshot, SubscriptionCommands]:
    """Once the pool holds three: the endpoint topics then, and commands writing through the pool."""
    wait_until(lambda: writer.pooled() == 3, timeout_s=60, what="three endpoint topics made ahead")
    made_before = endpoint_topics_once(settings, 3)
    snapshot = Snapshot(settings)
    return made_before, snapshot, SubscriptionCommands(writer, snapshot.get, snapshot.settle)


@pytest.mark.integration
def test_a_new_subscription_takes_a_topic_made_before_it(settings: Settings, writer: SubscriptionWriter,
                                                         filled: tuple) -> None:
    made_before, snapshot, commands = filled

    taken = commands.create(dict(HOOK))

    assert TopicNames.from_settings(settings).endpoint(taken.id) in made_before
    assert snapshot.get(taken.id) == taken
    wait_until(lambda: writer.pooled() == 3, timeout_s=60, what="the pool filled again")
    endpoint_topics_once(settings, 4)


@pytest.mark.integration
def test_an_id_or_partitions_of_its_own_leave_the_pool_alone(settings: Settings, writer: SubscriptionWriter,
                                                             filled: tuple) -> None:
    made_before, _, commands = filled

    heavy = commands.create(HOOK | {"partitions": 4})
    named = commands.create(HOOK | {"id": "sub_chosen_by_the_caller"})

    names = TopicNames.from_settings(settings)
    now = endpoint_topics_once(settings, 5)
    assert now[names.endpoint(heavy.id)] == 4 and names.endpoint(heavy.id) not in made_before
    assert names.endpoint(named.id) in now and names.endpoint(named.id) not in made_before
    assert writer.pooled() == 3


@pytest.mark.integration
def test_the_api_deletes_the_topics_nobody_took_when_it_stops(settings: Settings) -> None:
    tokens = SecretStr(json.dumps({TOKEN: "*"}))
    app = create_app(settings.model_copy(update={"api_tokens": tokens, "endpoint_topic_pool": 4}))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as client:
        wait_until(lambda: client.get("/healthz").json()["endpoint_topics_ready"] == 4, timeout_s=60,
                   what="four endpoint topics made ahead")
        created = client.post("/v1/subscriptions", json=HOOK, headers=headers)
        assert created.status_code == 201, created.text
        kept = TopicNames.from_settings(settings).endpoint(created.json()["id"])
        wait_until(lambda: client.get("/healthz").json()["endpoint_topics_ready"] == 4, timeout_s=60,
                   what="the pool filled again")
        endpoint_topics_once(settings, 5)

    wait_until(lambda: list(endpoint_topics(settings)) == [kept], timeout_s=30,
               what="only the taken subscription's topic left")


class BlockedCreator:
    """A creator whose broker does not answer until let go, or refuses."""

    def __init__(self, refuse: bool = False):
        self.asked = threading.Event()
        self.go_on = threading.Event()
        self.refuse = refuse

    def ensure_all(self, specs: list[TopicSpec]) -> None:
        self.asked.set()
        self.go_on.wait(10)
        if self.refuse:
            raise ServiceError("the broker refused")

    def made(self, name: str) -> bool:
        return False


def test_an_empty_pool_never_makes_a_subscription_wait() -> None:
    creator = BlockedCreator()
    pool = TopicPool(creator, lambda subscription_id: TopicSpec(name=subscription_id, partitions=1), size=2)
    assert creator.asked.wait(10)
    assert pool.take() is None  # the filler is still waiting for the broker
    creator.go_on.set()
    assert wait_until(lambda: len(pool) == 2, timeout_s=10, what="the pool filled")
    taken = pool.take()
    assert taken is not None
    wait_until(lambda: len(pool) == 2, timeout_s=10, what="the pool filled again")
    unused = pool.close()
    assert len(unused) == 2 and taken not in unused


def test_a_refused_fill_is_tried_again_and_hands_out_nothing() -> None:
    creator = BlockedCreator(refuse=True)
    creator.go_on.set()
    pool = TopicPool(creator, lambda subscription_id: TopicSpec(name=subscription_id, partitions=1), size=2)
    assert creator.asked.wait(10)
    assert pool.take() is None and len(pool) == 0
    assert pool.close() == []


def test_a_refill_fills_the_pool_to_the_brim() -> None:
    creator = BlockedCreator()
    creator.go_on.set()  # a broker that makes every topic at once
    pool = TopicPool(creator, lambda subscription_id: TopicSpec(name=subscription_id, partitions=1), size=1000)
    wait_until(lambda: len(pool) == 1000, timeout_s=10, what="the pool filled")

    for _ in range(963):  # a burst that leaves a number of missing ids no batch divides
        assert pool.take() is not None

    wait_until(lambda: len(pool) == 1000, timeout_s=10, what="the pool filled again, to its size")
    assert len(pool.close()) == 1000
