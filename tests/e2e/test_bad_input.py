"""Bad input is refused or dead-lettered with its reason; nothing accepted is lost."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.kafka.offsets import watermarks
from pipeline.models import DeliveryTask
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.conftest import stage_env
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages


def end_offset(settings: Settings, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "offsets"})
    try:
        return watermarks(consumer, TopicPartition(topic, 0))[1]
    finally:
        consumer.close()


def read_all(settings: Settings, topic: str, count: int) -> list:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"read-{topic}",
                         "auto.offset.reset": "earliest", "fetch.max.bytes": 8 << 20})
    consumer.subscribe([topic])
    messages: list = []
    try:
        def more() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
            return len(messages) >= count
        wait_until(more, timeout_s=60, interval_s=0, what=f"{count} messages on {topic}")
    finally:
        consumer.close()
    return messages


@pytest.mark.integration
def test_invalid_events_go_to_dead_letters_with_their_reason(settings: Settings, tmp_path: Path) -> None:
    names = TopicNames.from_settings(settings)
    bad = {
        b"not json at all": "value",
        json.dumps({"data": {"x": 1}}).encode(): "type",
        json.dumps({"type": "user.created", "colour": "red"}).encode(): "colour",
    }
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for value in bad:
        producer.produce(names.events, value=value)
    producer.flush(10)
    with running_stages(settings, ["pipeline.router"], tmp_path / "logs"):
        with logs_on_failure(tmp_path / "logs"):
            dead = read_all(settings, names.dead_letters, len(bad))
            decisions = [codec("routing_decision").decode(m.value()) for m in read_all(settings, names.routing, len(bad))]
    by_value = {message.value(): dict(message.headers()) for message in dead}
    assert set(by_value) == set(bad)  # every bad message kept, byte for byte
    for value, field in bad.items():
        headers = by_value[value]
        assert headers["error-field"].decode() == field
        assert field in headers["error"].decode()
        assert headers["source-topic"].decode() == names.events
    assert [(d["outcome"], d["reason"]) for d in decisions] == [("dropped", "invalid")] * len(bad)
    assert all(d["error"] for d in decisions)


def envelope(kind: str, data: object, **fields: object) -> bytes:
    return json.dumps({"type": kind, "data": data, **fields}, ensure_ascii=False).encode()


@pytest.mark.integration
def test_events_that_once_crashed_the_router_each_get_an_outcome_and_it_carries_on(settings: Settings,
                                                                                 tmp_path: Path) -> None:
    """Each message gets its routing row, and each refused one its dead letter with the reason (a
    reference when it is too large to copy); the valid ones around them are routed."""
    names = TopicNames.from_settings(settings)
    subscription = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None).create(
        {"name": "big", "url": "https://example.test/hook", "event_types": ["big.*"]})
    nested = b'{"type": "big.nested", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    noise = b"\x00" + os.urandom(1_040_000)  # not JSON, and too large to copy into a dead letter
    cjk = "東京都の天気は晴れ" * 22_000  # about 600 KB of UTF-8 text; as \u escapes it would be twice that
    refused = {  # value: (key, the field its error names)
        nested: (None, "value"),
        noise: (None, "value"),
        envelope("big.nan", {"amount": float("nan")}): (None, "data.amount"),
        envelope("big.huge", "x" * 999_000): (None, "data"),  # its task would not fit in a Kafka record
        envelope("big.unkeyed", {}, ordering_key="user-1"): (None, "key"),
    }
    routed = {envelope("big.cjk", {"text": cjk}, id="evt_cjk"): b"evt_cjk",
              envelope("big.fits", "x" * 994_000, id="evt_fits"): b"evt_fits",  # the README's "about 995 KB"
              envelope("big.after", {"n": 1}, id="evt_after"): b"evt_after"}
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "message.max.bytes": 1_048_000})
    for value, (key, _) in refused.items():
        producer.produce(names.events, key=key, value=value)
    for value, key in routed.items():
        producer.produce(names.events, key=key, value=value)
    assert producer.flush(30) == 0
    count = len(refused) + len(routed)
    with running_stages(settings, ["pipeline.router"], tmp_path / "logs"):
        with logs_on_failure(tmp_path / "logs"):
            rows = [codec("routing_decision").decode(m.value()) for m in read_all(settings, names.routing, count)]
            dead = read_all(settings, names.dead_letters, len(refused))
            tasks = [DeliveryTask.from_avro(m.value()) for m in read_all(settings, names.endpoint(subscription.id), 3)]
    assert sorted(row["reason"] or row["outcome"] for row in rows) == ["invalid"] * len(refused) + ["routed"] * 3
    assert {task.event.id: json.loads(task.event.data) for task in tasks} == {
        "evt_cjk": {"text": cjk}, "evt_fits": "x" * 994_000, "evt_after": {"n": 1}}
    positions = {(dict(m.headers())["source-partition"], dict(m.headers())["source-offset"]) for m in dead}
    assert len(positions) == len(refused)  # one dead letter each
    by_field = sorted(dict(m.headers())["error-field"].decode() for m in dead)
    assert by_field == sorted(field for _, field in refused.values())
    (reference,) = [m for m in dead if dict(m.headers()).get("payload") == b"reference"]
    headers = dict(reference.headers())
    assert reference.value() == b"" and headers["source-size"] == str(len(noise)).encode()
    assert headers["source-sha256"] == hashlib.sha256(noise).hexdigest().encode()
    whole = {m.value() for m in dead} - {b""}
    assert whole == set(refused) - {noise}  # the others are kept byte for byte


@pytest.mark.integration
@pytest.mark.parametrize("arguments, field", [
    (["--name", "x", "--url", "ftp://example.test/hook", "-e", "user.*"], "url"),
    (["--name", "x", "--url", "https://example.test/hook", "-e", "user.**"], "event_types"),
    (["--json", '{"name": "x", "url": "https://example.test/h", "event_types": ["*"], "colour": "red"}'], "colour"),
    (["--name", "x", "--url", "https://example.test/hook"], "event_types"),
    (["--name", "x", "--url", "https://example.test/h", "-e", "*", "--method", "DELETE"], "method"),
    (["--name", "x", "--url", "https://example.test/h", "-e", "*", "--filter", '{"data.a": {"$near": 1}}'], "filter"),
    (["--name", "x", "--url", "https://example.test/h", "-e", "*", "--filter", "{not json"], "--filter"),
    (["--name", "x", "--url", "https://example.test/h", "-e", "*", "--template", '{"a": "{{ data.a"}'], "template"),
    (["--name", "x", "--url", "https://example.test/h", "-e", "*", "-H", "x-evil=a\r\nb: c"], "headers"),
    (["--name", "x", "--url", "https://example.test/h", "-e", "*", "--format", "json-rpc"], "rpc_method"),
])
def test_an_invalid_subscription_is_refused_and_nothing_is_written(settings: Settings, arguments: list[str],
                                                                    field: str) -> None:
    names = TopicNames.from_settings(settings)
    before = end_offset(settings, names.subscriptions)
    result = CliRunner().invoke(app, ["subscriptions", "create", *arguments], env=stage_env(settings))
    assert result.exit_code == 2
    assert f"{field}:" in result.output
    assert end_offset(settings, names.subscriptions) == before


@pytest.mark.integration
def test_the_cli_lists_by_tenant_state_and_event_type(settings: Settings) -> None:
    env = stage_env(settings)
    runner = CliRunner()
    for name, extra in (("acme-orders", ["--tenant", "acme", "-e", "order.*"]),
                        ("globex-users", ["--tenant", "globex", "-e", "user.*", "--inactive"])):
        created = runner.invoke(app, ["subscriptions", "create", "--name", name, "--url", "https://example.test/h",
                                      *extra], env=env)
        assert created.exit_code == 0, created.output
    listed = lambda *options: runner.invoke(app, ["subscriptions", "list", *options], env=env).output  # noqa: E731
    assert "acme-orders" in listed("--tenant", "acme") and "globex-users" not in listed("--tenant", "acme")
    assert "globex-users" in listed("--paused") and "acme-orders" not in listed("--paused")
    assert "acme-orders" in listed("-e", "order.paid") and "globex-users" not in listed("-e", "order.paid")


@pytest.mark.integration
@pytest.mark.parametrize("changes, field", [
    ('{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}', "secret"),
    ('{"previous_secrets": []}', "previous_secrets"),
])
def test_an_update_cannot_replace_the_secret_without_the_overlap(settings: Settings, changes: str,
                                                                 field: str) -> None:
    env = stage_env(settings)
    runner = CliRunner()
    created = runner.invoke(app, ["subscriptions", "create", "--id", "sub_kept", "--name", "x", "--url",
                                  "https://example.test/h", "-e", "*"], env=env)
    assert created.exit_code == 0, created.output
    names = TopicNames.from_settings(settings)
    before = end_offset(settings, names.subscriptions)
    result = runner.invoke(app, ["subscriptions", "update", "sub_kept", "--json", changes], env=env)
    assert result.exit_code == 2
    assert f"{field}:" in result.output and "rotate-secret" in result.output
    assert end_offset(settings, names.subscriptions) == before
