"""Every subscription setting on the real pipeline: the receiver sees exactly what it promises.

One router, dispatcher and results service run for the whole module; each test uses event
types of its own, so the tests do not see each other's deliveries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from confluent_kafka import Consumer
from standardwebhooks import Webhook

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.producer import EventPublisher
from pipeline.producer.tasks import TaskPublisher, webhook_test_task
from pipeline.receiver import ReceivedDelivery, Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.snapshot import read_snapshot
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.conftest import results_auth
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

pytestmark = pytest.mark.integration


class Stack:
    def __init__(self, settings: Settings, receiver: Receiver, logs: Path):
        self.settings, self.receiver, self.logs = settings, receiver, logs
        self.commands = SubscriptionCommands(SubscriptionWriter(settings), lambda i: read_snapshot(settings).get(i))
        self.publisher = EventPublisher(settings)

    def subscribe(self, **fields) -> tuple[Subscription, str, str]:
        """A subscription of a fresh event type; returns it, its type and its receiver path."""
        kind = f"t{uuid.uuid4().hex[:8]}"
        path = f"/{kind}"
        fields = {"name": kind, "url": f"{self.receiver.base_url}{path}", "event_types": [f"{kind}.*"]} | fields
        return self.commands.create(fields), kind, path

    def publish(self, kind: str, data: dict, **fields) -> str:
        event = self.publisher.publish_fields(type=f"{kind}.happened", data=json.dumps(data).encode(), **fields)
        self.publisher.flush()
        return event.id

    def decisions(self, event_ids: set[str], reason: str) -> bool:
        """Whether the router has decided one of these events, dropping it for this reason."""
        return reason in self.reasons(event_ids).values()

    def reasons(self, event_ids: set[str]) -> dict[str, str]:
        """The router's decision on each of these events decided so far: a drop reason, or "routed"."""
        names = TopicNames.from_settings(self.settings)
        consumer = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap_servers,
                             "group.id": f"decisions-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
        consumer.subscribe([names.routing])
        found: dict[str, str] = {}
        try:
            while (message := consumer.poll(1.0)) is not None:
                if message.error() is None:
                    decision = codec("routing_decision").decode(message.value())
                    if decision["event_id"] in event_ids:
                        found[decision["event_id"]] = decision["reason"] or decision["outcome"]
            return found
        finally:
            consumer.close()

    def received(self, path: str, count: int) -> list[ReceivedDelivery]:
        with logs_on_failure(self.logs):
            return wait_until(lambda: len(found := self.receiver.by_path(path)) >= count and found,
                              timeout_s=60, what=f"{count} deliveries at {path}")


@pytest.fixture(scope="module")
def stack(module_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    receiver = Receiver()
    receiver.start()
    logs = tmp_path_factory.mktemp("logs")
    try:
        with running_stages(module_settings, ["pipeline.router", "pipeline.dispatcher", "pipeline.results"], logs):
            yield Stack(module_settings, receiver, logs)
    finally:
        receiver.stop()


def test_an_event_published_right_after_its_subscription_is_created_is_delivered(stack: Stack) -> None:
    """No waiting in between: the router may read the event before the subscription, and must not
    drop it as matching nothing."""
    published = {}
    for _ in range(10):
        _, kind, path = stack.subscribe()
        published[stack.publish(kind, {"n": 1})] = path
    for path in published.values():
        stack.received(path, 1)
    assert set(stack.reasons(set(published)).values()) == {"routed"}


def test_a_paused_subscription_gets_nothing_until_resumed(stack: Stack) -> None:
    subscription, kind, path = stack.subscribe(active=False)
    paused = set()
    wait_until(lambda: paused.add(stack.publish(kind, {"n": 1})) or stack.decisions(paused, "paused"),
               timeout_s=30, interval_s=0.5, what="the router seeing the paused subscription")
    stack.commands.update(subscription.id, {"active": True})
    wait_until(lambda: read_snapshot(stack.settings)[subscription.id].active, what="resume written")
    # The router takes about a fetch interval to see the change: publish until one arrives.
    wait_until(lambda: stack.publish(kind, {"n": 3}) and stack.receiver.by_path(path), timeout_s=30,
               interval_s=0.5, what="a delivery after resuming")
    assert {json.loads(d.body)["data"]["n"] for d in stack.receiver.by_path(path)} == {3}  # none sent while paused


def test_get_carries_the_template_as_query_parameters(stack: Stack) -> None:
    _, kind, path = stack.subscribe(method="GET", template={"user": "{{ data.user }}", "n": "{{ data.n }}"})
    stack.publish(kind, {"user": "ada", "n": 7})
    (delivery,) = stack.received(path, 1)
    assert delivery.method == "GET" and delivery.body == b""
    assert parse_qs(delivery.query) == {"user": ["ada"], "n": ["7"]}


def test_form_raw_and_json_rpc_bodies(stack: Stack) -> None:
    _, form_kind, form_path = stack.subscribe(body_format="form", template={"user": "{{ data.user }}", "n": "{{ data.n }}"})
    _, raw_kind, raw_path = stack.subscribe(body_format="raw", template="user={{ data.user }};n={{ data.n }}")
    _, rpc_kind, rpc_path = stack.subscribe(body_format="json-rpc", rpc_method="user.sync",
                                            template={"user": "{{ data.user }}"})
    for kind in (form_kind, raw_kind, rpc_kind):
        stack.publish(kind, {"user": "ada", "n": 7})
    (form,) = stack.received(form_path, 1)
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(form.body.decode()) == {"user": ["ada"], "n": ["7"]}
    (raw,) = stack.received(raw_path, 1)
    assert raw.body == b"user=ada;n=7"
    (rpc,) = stack.received(rpc_path, 1)
    body = json.loads(rpc.body)
    assert (body["jsonrpc"], body["method"], body["params"]) == ("2.0", "user.sync", {"user": "ada"})


def test_hash_fields_equal_independently_computed_hashes(stack: Stack) -> None:
    template = {algorithm: {"$hash": algorithm, "of": ["data.user", "data.n"]}
                for algorithm in ("md5", "crc32", "sha1", "sha256")}
    _, kind, path = stack.subscribe(template=template)
    stack.publish(kind, {"user": "ada", "n": 7})
    (delivery,) = stack.received(path, 1)
    body = json.loads(delivery.body)
    text = b"ada7"
    assert body["md5"] == hashlib.md5(text).hexdigest()
    assert body["sha1"] == hashlib.sha1(text).hexdigest()
    assert body["sha256"] == hashlib.sha256(text).hexdigest()
    assert body["crc32"] == f"{zlib.crc32(text):08x}"


def test_a_batch_of_five_arrives_as_one_array(stack: Stack) -> None:
    _, kind, path = stack.subscribe(batch_max_events=5, batch_max_wait_ms=5000)
    with stack.publisher as publisher:
        for n in range(5):
            publisher.publish_fields(type=f"{kind}.happened", data=json.dumps({"n": n}).encode(), ordering_key="k")
    (delivery,) = stack.received(path, 1)
    batch = json.loads(delivery.body)
    assert [item["data"]["n"] for item in batch] == [0, 1, 2, 3, 4]


def test_source_and_content_filters_let_through_exactly_the_expected_events(stack: Stack) -> None:
    _, source_kind, source_path = stack.subscribe(sources=["device-1", "device-2"])
    _, content_kind, content_path = stack.subscribe(filter={"data.amount": {"$gte": 100}, "data.currency": "EUR"})
    # One ordering key per subscription: its events stay in publish order end to end, and the last
    # one passes, so by the time the expected deliveries are in, a wrongly passed event is among them.
    for source in ("device-1", "device-3", "device-2", "device-1"):
        stack.publish(source_kind, {"from": source}, source=source, ordering_key="sources")
    for amount, currency in ((150, "EUR"), (50, "EUR"), (500, "USD"), (99.5, "EUR"), (100, "EUR")):
        stack.publish(content_kind, {"amount": amount, "currency": currency}, ordering_key="amounts")
    stack.received(source_path, 3)
    stack.received(content_path, 2)
    assert [json.loads(d.body)["data"]["from"] for d in stack.receiver.by_path(source_path)] == \
        ["device-1", "device-2", "device-1"]
    assert [json.loads(d.body)["data"]["amount"] for d in stack.receiver.by_path(content_path)] == [150, 100]


def test_both_signature_schemes_verify_independently(stack: Stack) -> None:
    standard, standard_kind, standard_path = stack.subscribe()
    plain, plain_kind, plain_path = stack.subscribe(signing="hmac-sha256")
    stack.publish(standard_kind, {"a": 1})
    stack.publish(plain_kind, {"a": 1})
    (signed,) = stack.received(standard_path, 1)
    Webhook(standard.secret).verify(signed.body, signed.headers)
    (hexed,) = stack.received(plain_path, 1)
    key = base64.b64decode(plain.secret.removeprefix("whsec_"))
    assert hexed.headers["x-signature-algo"] == "sha256"
    assert hexed.headers["x-signature"] == hmac.new(key, hexed.body, hashlib.sha256).hexdigest()


def test_during_rotation_both_secrets_verify(stack: Stack) -> None:
    subscription, kind, path = stack.subscribe()
    rotated = stack.commands.rotate_secret(subscription.id, overlap=__import__("datetime").timedelta(hours=24))
    wait_until(lambda: stack.publish(kind, {"a": 1}) and stack.receiver.by_path(path), timeout_s=30,
               interval_s=0.5, what="a delivery after rotation")
    delivery = stack.receiver.by_path(path)[-1]
    assert len(delivery.headers["webhook-signature"].split()) == 2
    Webhook(rotated.secret).verify(delivery.body, delivery.headers)
    Webhook(subscription.secret).verify(delivery.body, delivery.headers)


def test_auth_and_custom_headers(stack: Stack) -> None:
    _, basic_kind, basic_path = stack.subscribe(auth={"type": "basic", "username": "ada", "password": "pw"},
                                                headers={"x-team": "core", "user-agent": None})
    _, bearer_kind, bearer_path = stack.subscribe(auth={"type": "bearer", "token": "t0k"})
    stack.publish(basic_kind, {})
    stack.publish(bearer_kind, {})
    (basic,) = stack.received(basic_path, 1)
    assert basic.headers["authorization"] == "Basic " + base64.b64encode(b"ada:pw").decode()
    assert basic.headers["x-team"] == "core"
    assert "webhook-pipeline" not in basic.headers.get("user-agent", "")  # our default removed
    (bearer,) = stack.received(bearer_path, 1)
    assert bearer.headers["authorization"] == "Bearer t0k"


# "A change takes effect in about a second": with room for a loaded 2-core CI machine.
PROPAGATION_S = 2.5


def _publish_through(stack: Stack, kind: str, seconds: float) -> list[tuple[str, float]]:
    """Publishes an event every 0.1 s for `seconds`, one ordering key; returns (id, publish time)
    in order, event n carrying {"n": n}."""
    published: list[tuple[str, float]] = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        moment = time.time()
        published.append((stack.publish(kind, {"n": len(published)}, ordering_key="k"), moment))
        time.sleep(0.1)  # pacing what is published, not waiting for anything
    return published


def test_a_dispatcher_setting_applies_within_about_a_second(stack: Stack) -> None:
    subscription, kind, path = stack.subscribe()
    stack.publish(kind, {"n": -1}, ordering_key="k")
    stack.received(path, 1)
    changed_at = time.time()
    stack.commands.update(subscription.id, {"url": f"{stack.receiver.base_url}{path}/moved"})
    published = _publish_through(stack, kind, PROPAGATION_S + 1.5)
    wait_until(lambda: len(stack.receiver.by_path(path)) - 1 + len(stack.receiver.by_path(f"{path}/moved"))
               >= len(published), what="every event delivered somewhere")
    old = [json.loads(d.body)["data"]["n"] for d in stack.receiver.by_path(path)][1:]
    moved = [json.loads(d.body)["data"]["n"] for d in stack.receiver.by_path(f"{path}/moved")]
    assert old + moved == list(range(len(published)))  # one switch, in order: never back to the old URL
    assert moved and all(published[n][1] - changed_at < PROPAGATION_S for n in old), (old, moved)


def test_a_router_setting_applies_within_about_a_second(stack: Stack) -> None:
    subscription, kind, _ = stack.subscribe()
    changed_at = time.time()
    stack.commands.update(subscription.id, {"active": False})
    published = _publish_through(stack, kind, PROPAGATION_S + 1.5)
    ids = {event_id for event_id, _ in published}
    reasons = wait_until(lambda: len(found := stack.reasons(ids)) == len(ids) and found,
                         what="the router deciding every event")
    verdicts = [reasons[event_id] for event_id, _ in published]
    assert "paused" in verdicts, verdicts
    switched = verdicts.index("paused")
    assert verdicts == ["routed"] * switched + ["paused"] * (len(verdicts) - switched)  # one switch
    assert published[switched][1] - changed_at < PROPAGATION_S, verdicts


def test_a_test_send_reaches_only_that_subscription(stack: Stack) -> None:
    subscription, _, path = stack.subscribe()
    other, _, other_path = stack.subscribe()
    TaskPublisher(stack.settings).publish(webhook_test_task(subscription))
    (delivery,) = stack.received(path, 1)
    assert json.loads(delivery.body)["type"] == "webhook.test"
    Webhook(subscription.secret).verify(delivery.body, delivery.headers)
    assert stack.receiver.by_path(other_path) == []


def test_the_last_deliveries_show_request_headers_without_credentials(stack: Stack) -> None:
    import httpx

    subscription, kind, path = stack.subscribe(auth={"type": "bearer", "token": "t0p-s3cr3t"})
    stack.publish(kind, {"n": 1})
    stack.received(path, 1)
    url = f"http://127.0.0.1:{stack.settings.results_port}/v1/attempts"
    auth = results_auth(stack.settings)
    rows = wait_until(lambda: httpx.get(url, params={"subscription_id": subscription.id}, timeout=10, headers=auth)
                      .json()["attempts"], what="the attempt in ClickHouse")
    (row,) = rows
    assert row["status_code"] == 204 and row["outcome"] == "success"
    assert row["request_headers"]["authorization"] == "Bearer ***"
    assert row["request_headers"]["webhook-id"] == row["event_id"]
    assert "t0p-s3cr3t" not in json.dumps(rows)
