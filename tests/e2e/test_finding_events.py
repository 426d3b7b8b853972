"""Publishing over HTTP and finding one event, with every stage running as its own process.

A module-wide stack: router, dispatcher and results service as processes, the admin API in this
process, a receiver whose /failing path always answers 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from pipeline.api.app import create_app
from pipeline.cli import output
from pipeline.cli.main import app as cli
from pipeline.config import Settings
from pipeline.receiver import Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.conftest import stage_env
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

pytestmark = pytest.mark.integration

TOKENS = {"adm": "*", "pub_acme": {"tenant": "acme", "scopes": ["publish"]}, "tok_globex": "globex"}
ADMIN = {"Authorization": "Bearer adm"}
PUBLISHER = {"Authorization": "Bearer pub_acme"}
GLOBEX = {"Authorization": "Bearer tok_globex"}


@dataclass
class Stack:
    settings: Settings
    api: TestClient
    receiver: Receiver
    subscriptions: dict[str, Subscription]
    logs: Path

    def publish(self, body: dict, idempotency_key: str | None = None) -> dict:
        headers = PUBLISHER | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
        answer = self.api.post("/v1/events", json=body, headers=headers)
        assert answer.status_code == 202, answer.text
        return answer.json()

    def trail(self, event_id: str, until: Any, what: str) -> dict:
        """The event's trail once until(trail) holds."""
        def probe() -> dict | None:
            answer = self.api.get(f"/v1/events/{quote(event_id, safe='')}", headers=ADMIN)
            return answer.json() if answer.status_code == 200 and until(answer.json()) else None

        return self.waiting(probe, what)

    def deliveries(self, path: str, event_id: str) -> list:
        return [d for d in self.receiver.by_path(path) if json.loads(d.body)["id"] == event_id]

    def waiting(self, probe: Any, what: str) -> Any:
        with logs_on_failure(self.logs):
            return wait_until(probe, timeout_s=90, interval_s=0.3, what=what)


def states(trail: dict) -> dict[str, str]:
    return {delivery["subscription_id"]: delivery["state"] for delivery in trail["deliveries"]}


def settled(trail: dict, expected: dict[str, str]) -> bool:
    """The deliveries reached their states and the routing decision is in too.

    The router's decision and the dispatcher's attempts are separate records, which the results
    service may store in different batches: either can be queryable first.
    """
    return bool(trail["routing"]) and states(trail) == expected


@pytest.fixture(scope="module")
def stack(module_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    receiver = Receiver(respond=lambda delivery: 500 if delivery.path == "/failing" else 204)
    base_url = receiver.start()
    commands = SubscriptionCommands(SubscriptionWriter(module_settings), lambda _: None)
    subscriptions = {
        "orders": commands.create({"name": "orders", "url": f"{base_url}/orders", "event_types": ["order.*"]}),
        "invoices": commands.create({"name": "big invoices", "url": f"{base_url}/invoices",
                                     "event_types": ["invoice.*"], "filter": {"data.amount": {"$gte": 100}}}),
        "payments": commands.create({"name": "payments", "url": f"{base_url}/failing", "event_types": ["payment.*"]}),
        "globex": commands.create({"name": "globex's", "tenant": "globex", "url": f"{base_url}/globex",
                                   "event_types": ["*"]}),
    }
    logs = tmp_path_factory.mktemp("logs")
    # The results service checks the tokens the API forwards: every stage gets the same ones.
    settings = module_settings.model_copy(update={"api_tokens": SecretStr(json.dumps(TOKENS))})
    app = create_app(settings)
    try:
        with running_stages(settings, ["pipeline.router", "pipeline.dispatcher", "pipeline.results"], logs), \
                TestClient(app) as api:
            yield Stack(settings, api, receiver, subscriptions, logs)
    finally:
        receiver.stop()


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output.console, "width", 250)  # one table row per line, nothing folded


def run_cli(stack: Stack, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=stage_env(stack.settings))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_publish_retried_over_http_is_delivered_once(stack: Stack) -> None:
    body = {"type": "order.paid", "ordering_key": "order-1", "data": {"total": 12}}
    first = stack.publish(body, idempotency_key="order-1-paid")
    again = stack.publish(body, idempotency_key="order-1-paid")
    # Published after both, on the same key: once it arrives, a second copy would have arrived before it.
    after = stack.publish({"type": "order.shipped", "ordering_key": "order-1"})
    stack.waiting(lambda: stack.deliveries("/orders", after["id"]), "the event published after the retry")

    assert again == first | {"duplicate": True}
    [delivery] = stack.deliveries("/orders", first["id"])
    assert delivery.headers["webhook-id"] == first["id"] and json.loads(delivery.body)["data"] == {"total": 12}


def test_events_show_tells_a_routed_a_filtered_and_a_dead_lettered_events_path(stack: Stack,
                                                                                wide_console: None) -> None:
    orders, invoices, payments = (stack.subscriptions[name].id for name in ("orders", "invoices", "payments"))
    routed = stack.publish({"type": "order.paid", "ordering_key": "order-2"})["id"]
    filtered = stack.publish({"type": "invoice.sent", "data": {"amount": 5}})["id"]
    parked = stack.publish({"type": "payment.failed", "data": {"amount": 5}})["id"]

    delivered = stack.trail(routed, lambda t: settled(t, {orders: "delivered"}), "the order delivered")
    assert [d["matched"] for d in delivered["routing"]] == [[orders]]
    assert [a["outcome"] for a in delivered["deliveries"][0]["attempts"]] == ["success"]
    dropped = stack.trail(filtered, lambda t: t["routing"], "the invoice's routing decision")
    assert [(d["outcome"], d["reason"]) for d in dropped["routing"]] == [("dropped", "filtered")]
    assert dropped["deliveries"] == []
    dead = stack.trail(parked, lambda t: settled(t, {payments: "dead_lettered"}), "the payment dead-lettered")
    attempts = dead["deliveries"][0]["attempts"]
    tries = len(stack.settings.retry_schedule_s)
    assert [(a["attempt"], a["status_code"]) for a in attempts[:-1]] == [(n, 500) for n in range(1, tries + 1)]
    assert attempts[-1]["outcome"] == "dead_lettered" and attempts[-1]["error"]

    routed_text = run_cli(stack, "events", "show", routed)
    assert f"routed to {orders} (orders)" in routed_text and f"{orders} (orders): delivered" in routed_text
    filtered_text = run_cli(stack, "events", "show", filtered)
    assert "dropped (filtered)" in filtered_text and invoices not in filtered_text
    dead_text = run_cli(stack, "events", "show", parked)
    assert f"routed to {payments} (payments)" in dead_text and f"{payments} (payments): dead_lettered" in dead_text
    assert dead_text.count("http_error") == tries and dead_text.count("dead_lettered") == 2  # the state, the row


def test_an_invalid_event_is_found_by_its_place_in_the_events_topic(stack: Stack, wide_console: None) -> None:
    events_topic = TopicNames.from_settings(stack.settings).events
    producer = Producer({"bootstrap.servers": stack.settings.kafka_bootstrap_servers})
    delivered: list = []
    producer.produce(events_topic, key=b"k", value=b"{not json", on_delivery=lambda _, m: delivered.append(m))
    producer.flush(10)
    place = f"{events_topic}/{delivered[0].partition()}/{delivered[0].offset()}"

    trail = stack.trail(place, lambda t: t["routing"], "the invalid event's decision")
    assert [(d["reason"], bool(d["error"])) for d in trail["routing"]] == [("invalid", True)]
    assert "dropped (invalid)" in run_cli(stack, "events", "show", place)
    refused = stack.api.post(f"/v1/events/{quote(place, safe='')}/resend", headers=ADMIN,
                             json={"subscription_id": stack.subscriptions["orders"].id})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "event_id"


def test_one_event_is_resent_to_one_subscription(stack: Stack) -> None:
    orders, invoices = stack.subscriptions["orders"].id, stack.subscriptions["invoices"].id
    routed = stack.publish({"type": "order.paid", "ordering_key": "order-3", "data": {"n": 3}})["id"]
    stack.trail(routed, lambda t: settled(t, {orders: "delivered"}), "the order delivered")

    resent = stack.api.post(f"/v1/events/{routed}/resend", headers=ADMIN, json={"subscription_id": orders})
    assert resent.status_code == 202 and resent.json()["event_id"] == routed
    copies = stack.waiting(lambda: len(d := stack.deliveries("/orders", routed)) == 2 and d, "the resent copy")
    assert copies[0].body == copies[1].body and copies[0].headers["webhook-id"] == copies[1].headers["webhook-id"]
    trail = stack.trail(routed, lambda t: len(t["deliveries"][0]["attempts"]) == 2, "the resend's attempt")
    assert [a["outcome"] for a in trail["deliveries"][0]["attempts"]] == ["success", "success"]

    # An event the subscription's filter dropped reaches it when resent there on purpose, through the CLI.
    small = stack.publish({"type": "invoice.sent", "data": {"amount": 7}})["id"]
    stack.trail(small, lambda t: t["routing"], "the invoice's routing decision")
    assert f"resent {small}" in run_cli(stack, "events", "resend", small, "--subscription", invoices)
    stack.waiting(lambda: stack.deliveries("/invoices", small), "the filtered invoice, resent")
    assert stack.receiver.by_path("/globex") == []  # resent to that one subscription only


def test_resend_refuses_what_it_cannot_do_and_writes_nothing(stack: Stack) -> None:
    orders, globex = stack.subscriptions["orders"].id, stack.subscriptions["globex"].id
    routed = stack.publish({"type": "order.paid", "ordering_key": "order-4"})["id"]
    stack.trail(routed, lambda t: settled(t, {orders: "delivered"}), "the order delivered")

    def resend(event_id: str, subscription_id: str, headers: dict = ADMIN) -> Any:
        return stack.api.post(f"/v1/events/{event_id}/resend", headers=headers, json={"subscription_id": subscription_id})

    other_tenant = resend(routed, globex)
    assert other_tenant.status_code == 422 and other_tenant.json()["error"]["field"] == "subscription_id"
    assert resend(routed, "sub_missing").status_code == 404
    assert resend("evt_never_published", orders).status_code == 404
    assert resend(routed, globex, GLOBEX).status_code == 404  # globex's token does not see acme's event
    assert stack.api.get(f"/v1/events/{routed}", headers=GLOBEX).status_code == 404
    assert stack.api.get(f"/v1/events/{routed}", headers=PUBLISHER).status_code == 403
    assert stack.receiver.by_path("/globex") == [] and len(stack.deliveries("/orders", routed)) == 1
