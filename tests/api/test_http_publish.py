"""POST /v1/events against the real broker: what it accepts is in the events topic once, as the SDK writes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from pydantic import SecretStr

from pipeline.api import publish_routes
from pipeline.api.app import create_app
from pipeline.config import Settings
from pipeline.kafka.offsets import watermarks
from pipeline.models import decode_event
from pipeline.topics import TopicNames
from tests.polling import wait_until

TOKENS = {"adm_test": "*", "tok_acme": "acme", "pub_acme": {"tenant": "acme", "scopes": ["publish"]},
          "mgr_acme": {"tenant": "acme", "scopes": ["manage"]}}
ADMIN = {"Authorization": "Bearer adm_test"}
ACME = {"Authorization": "Bearer tok_acme"}
PUBLISHER = {"Authorization": "Bearer pub_acme"}
MANAGER = {"Authorization": "Bearer mgr_acme"}


@contextmanager
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"api_tokens": SecretStr(json.dumps(TOKENS))}))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with api(settings) as test_client:
        yield test_client


def keyed(key: str) -> dict[str, str]:
    return PUBLISHER | {"Idempotency-Key": key}


def topic_messages(settings: Settings, topic: str) -> list:
    """Every message of the topic, read to its end."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "reader",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: watermarks(consumer, TopicPartition(topic, p))[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end])
        messages: list = []
        wait_until(lambda: _poll_into(consumer, messages) >= sum(ends.values()), timeout_s=30, what=f"{topic} read")
        return messages
    finally:
        consumer.close()


def _poll_into(consumer: Consumer, messages: list) -> int:
    message = consumer.poll(0.2)
    if message is not None and message.error() is None:
        messages.append(message)
    return len(messages)


def events_in_topic(settings: Settings) -> list:
    return [(m.key(), decode_event(m.value())) for m in topic_messages(settings, TopicNames.from_settings(settings).events)]


@pytest.mark.integration
def test_a_retried_publish_is_written_once_with_the_same_id(client: TestClient, settings: Settings) -> None:
    body = {"type": "order.paid", "ordering_key": "order-7", "data": {"total": 12}}
    first = client.post("/v1/events", json=body, headers=keyed("pay-order-7"))
    again = client.post("/v1/events", json=body, headers=keyed("pay-order-7"))

    assert first.status_code == again.status_code == 202
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    [(key, event)] = events_in_topic(settings)
    assert key == b"order-7"  # keyed by ordering key, as the SDK keys it
    assert (event.id, event.tenant, event.type, json.loads(event.data)) == (first.json()["id"], "acme", "order.paid",
                                                                            {"total": 12})


@pytest.mark.integration
def test_an_event_id_is_an_idempotency_key_too(client: TestClient, settings: Settings) -> None:
    body = [{"type": "a.b", "id": "evt_given_1"}, {"type": "a.b", "id": "evt_given_2"}]
    assert [e["duplicate"] for e in client.post("/v1/events", json=body[:1], headers=PUBLISHER).json()["data"]] == [False]
    answers = client.post("/v1/events", json=body, headers=PUBLISHER).json()["data"]  # a retry that adds one
    assert [(e["id"], e["duplicate"]) for e in answers] == [("evt_given_1", True), ("evt_given_2", False)]
    assert sorted(event.id for _, event in events_in_topic(settings)) == ["evt_given_1", "evt_given_2"]


@pytest.mark.integration
def test_the_window_survives_a_restart_of_the_api(settings: Settings) -> None:
    body = {"type": "order.paid", "data": {"n": 1}}
    with api(settings) as first_life:
        published = first_life.post("/v1/events", json=body, headers=keyed("survives")).json()
    with api(settings) as second_life:
        retried = second_life.post("/v1/events", json=body, headers=keyed("survives")).json()
    assert retried == published | {"duplicate": True}
    assert len(events_in_topic(settings)) == 1


@pytest.mark.integration
def test_concurrent_retries_publish_once(client: TestClient, settings: Settings) -> None:
    body = {"type": "order.paid", "data": {"n": 1}}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/v1/events", json=body, headers=keyed("at-once")), range(8)))
    assert sorted(answer.json()["duplicate"] for answer in answers) == [False] + [True] * 7
    assert len(events_in_topic(settings)) == 1


@pytest.mark.integration
def test_past_the_window_the_key_publishes_again(settings: Settings) -> None:
    with api(settings.model_copy(update={"idempotency_window_s": 1.0})) as client:
        body = {"type": "order.paid"}
        assert client.post("/v1/events", json=body, headers=keyed("short")).json()["duplicate"] is False
        wait_until(lambda: not client.post("/v1/events", json=body, headers=keyed("short")).json()["duplicate"],
                   timeout_s=30, what="the key to leave the window")
    assert len(events_in_topic(settings)) == 2


@pytest.mark.integration
def test_a_key_reused_for_another_event_is_refused_and_nothing_written(client: TestClient, settings: Settings) -> None:
    assert client.post("/v1/events", json={"type": "a.b", "data": {"n": 1}}, headers=keyed("k1")).status_code == 202
    refused = client.post("/v1/events", json={"type": "a.b", "data": {"n": 2}}, headers=keyed("k1"))
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "Idempotency-Key"
    assert len(events_in_topic(settings)) == 1


@pytest.mark.integration
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(client: TestClient, settings: Settings) -> None:
    batch = [{"type": "a.b", "data": {"n": 1}}, {"type": "a.b", "ordering_key": ["not", "a", "string"]}]
    refused = client.post("/v1/events", json=batch, headers=keyed("bad-batch"))
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "[1].ordering_key"
    other_tenant = client.post("/v1/events", json={"type": "a.b", "tenant": "globex"}, headers=PUBLISHER)
    assert other_tenant.status_code == 422 and other_tenant.json()["error"]["field"] == "tenant"
    names = TopicNames.from_settings(settings)
    assert topic_messages(settings, names.events) == topic_messages(settings, names.idempotency) == []
    # The refused key was never taken: the good batch goes through with it.
    good = client.post("/v1/events", json=batch[:1], headers=keyed("bad-batch"))
    assert good.status_code == 202 and good.json()["data"][0]["duplicate"] is False


@pytest.mark.integration
def test_a_body_that_is_not_json_or_too_large_is_refused(client: TestClient) -> None:
    not_json = client.post("/v1/events", content=b'{"type": "a.b",', headers=PUBLISHER)
    assert not_json.status_code == 422 and not_json.json()["error"]["field"] == "body"
    padding = "x" * (publish_routes.MAX_BODY_BYTES // 100)
    too_large = client.post("/v1/events", json=[{"type": "a.b", "data": padding}] * 101, headers=PUBLISHER)
    assert too_large.status_code == 413 and too_large.json()["error"]["field"] == "body"


@pytest.mark.integration
def test_scopes_keep_publishing_and_managing_apart(client: TestClient) -> None:
    assert client.post("/v1/events", json={"type": "a.b"}).status_code == 401
    assert client.post("/v1/events", json={"type": "a.b"}, headers=MANAGER).status_code == 403
    assert client.get("/v1/subscriptions", headers=PUBLISHER).status_code == 403
    assert client.get("/v1/subscriptions", headers=MANAGER).status_code == 200
    for headers in (ACME, ADMIN, PUBLISHER):  # a plain tenant or admin token keeps every scope
        assert client.post("/v1/events", json={"type": "a.b"}, headers=headers).status_code == 202
