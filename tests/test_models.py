import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.fernet import Fernet

from pipeline.errors import InvalidEvent, InvalidInput
from pipeline.kafka.position import Position
from pipeline.models import DeliveryTask, Event, decode_event, encode_task, encode_tasks, new_secret, utcnow, validated
from pipeline.subscriptions.avro import from_avro, to_avro
from pipeline.subscriptions.model import PreviousSecret, Subscription
from pipeline.subscriptions.secretbox import SecretBox


def test_avro_round_trips() -> None:
    event = Event(type="user.created", ordering_key="k", data=b'{"a":1}')
    assert decode_event(event.to_avro()) == event
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["user.*"])
    box = SecretBox(Fernet.generate_key())
    assert from_avro(to_avro(subscription, box), box) == subscription
    task = DeliveryTask(subscription_id=subscription.id, routed_at=utcnow(), event=event)
    assert DeliveryTask.from_avro(task.to_avro()) == task


def test_json_envelopes_are_accepted() -> None:
    event = decode_event(b'{"type": "user.created", "data": {"name": "Ada"}, "ordering_key": "u1"}')
    assert event.type == "user.created" and event.data == b'{"name":"Ada"}' and event.ordering_key == "u1"


@pytest.mark.parametrize("payload, field", [
    (b"", "value"),
    (b"not json", "value"),
    (b"[1, 2]", "value"),
    (b'{"data": {}}', "type"),
    (b'{"type": "bad type with spaces"}', "type"),
    (b'{"type": "ok", "colour": "red"}', "colour"),
])
def test_invalid_events_name_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload)
    assert caught.value.field == field


def test_avro_event_claiming_json_must_carry_json() -> None:
    with pytest.raises(InvalidEvent):
        decode_event(Event(type="t", data=b"{not json").to_avro())


@pytest.mark.parametrize("fields, field", [
    ({"url": "ftp://example.test"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"event_types": []}, "event_types"),
    ({"event_types": ["user.**"]}, "event_types"),
    ({"secret": "whsec_short"}, "secret"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_subscriptions_name_the_field(fields: dict, field: str) -> None:
    base = {"name": "s", "url": "https://example.test/h", "event_types": ["*"]}
    with pytest.raises(InvalidInput) as caught:
        validated(Subscription, **(base | fields))
    assert caught.value.field == field


def test_json_content_types_with_parameters_are_json() -> None:
    from pipeline.documents import event_document
    from pipeline.dispatcher.request import envelope_body

    event = Event(type="t", data=b'{"a": 1}', content_type="application/json; charset=utf-8")
    assert event_document(event)["data"] == {"a": 1}
    assert json.loads(envelope_body(event))["data"] == {"a": 1}


@pytest.mark.parametrize("fields", [
    {"method": "GET", "template": "{{ data.a }}"},
    {"body_format": "form", "template": {"$hash": "md5", "of": ["data.a"]}},
])
def test_query_and_form_need_named_values(fields: dict) -> None:
    with pytest.raises(InvalidInput) as caught:
        validated(Subscription, name="s", url="https://example.test/h", event_types=["*"], **fields)
    assert caught.value.field == "template"


def test_an_update_refuses_the_secrets_and_points_to_rotation() -> None:
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"])
    for field, value in (("secret", new_secret()), ("previous_secrets", [])):
        with pytest.raises(InvalidInput, match="rotate-secret") as caught:
            subscription.patched({field: value})
        assert caught.value.field == field


def test_the_previous_secret_stops_signing_when_the_overlap_ends() -> None:
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"])
    rotated = subscription.rotated(timedelta(hours=24))
    assert rotated.signing_secrets() == [rotated.secret, subscription.secret]
    ends = rotated.previous_secrets[0].expires_at
    assert rotated.signing_secrets(now=ends - timedelta(seconds=1)) == [rotated.secret, subscription.secret]
    assert rotated.signing_secrets(now=ends) == [rotated.secret]
    assert rotated.signing_secrets(now=ends + timedelta(days=1)) == [rotated.secret]


def test_an_expired_previous_secret_does_not_sign_and_is_dropped_at_the_next_rotation() -> None:
    expired = PreviousSecret(secret=new_secret(), expires_at=utcnow() - timedelta(seconds=1))
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"], previous_secrets=[expired])
    assert subscription.signing_secrets() == [subscription.secret]
    rotated = subscription.rotated(timedelta(hours=24))
    assert [old.secret for old in rotated.previous_secrets] == [subscription.secret]


@pytest.mark.parametrize("payload, field", [
    (b'{"type": "t", "data": {"amount": NaN}}', "data.amount"),
    (b'{"type": "t", "data": {"items": [1, {"price": -Infinity}]}}', "data.items.1.price"),
    (b'{"type": "t", "data": {"huge": 1e999}}', "data.huge"),
    (b'{"type": "t", "data": Infinity}', "data"),
    (b'{"type": "t", "time": NaN}', "time"),
])
def test_nan_and_infinity_are_refused_naming_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload)
    assert caught.value.field == field
    assert "not a JSON number" in caught.value.problem


def test_an_avro_event_with_nan_in_its_json_data_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(Event(type="t", data=b'{"a": {"b": NaN}}').to_avro())
    assert caught.value.field == "data.a.b"


@pytest.mark.parametrize("depth", [65, 5000, 200_000])
def test_nesting_past_the_limit_is_refused_never_a_recursion_error(depth: int) -> None:
    payload = b'{"type": "t", "data": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload)
    assert caught.value.field in ("data", "value") and "nested deeper than 64 levels" in caught.value.problem
    with pytest.raises(InvalidEvent, match="nested deeper"):
        decode_event(Event(type="t", data=b'{"a": ' + b"[" * depth + b"]" * depth + b"}").to_avro())


def test_nesting_up_to_the_limit_is_accepted() -> None:
    depth = 63  # the envelope is the first level
    event = decode_event(b'{"type": "t", "data": ' + b"[" * depth + b"]" * depth + b"}")
    assert event.data == b"[" * depth + b"]" * depth


def test_json_data_keeps_text_as_utf8_rather_than_escapes() -> None:
    text = "東京都の天気" * 1000
    event = decode_event(json.dumps({"type": "t", "data": {"text": text}}, ensure_ascii=False).encode())
    assert json.loads(event.data) == {"text": text}
    assert len(event.data) == len(text.encode()) + len('{"text":""}')  # three bytes a character, not six


def test_a_lone_surrogate_in_data_is_kept_as_its_escape_but_refused_in_envelope_fields() -> None:
    event = decode_event(b'{"type": "t", "data": {"s": "a\\ud800b"}}')
    assert json.loads(event.data) == {"s": "a\ud800b"} and event.data.isascii()
    with pytest.raises(InvalidEvent) as caught:
        decode_event(b'{"type": "t", "source": "a\\ud800b"}')
    assert caught.value.field == "source"


def test_a_json_event_without_id_or_time_takes_them_from_its_kafka_record() -> None:
    payload = b'{"type": "user.created", "data": {}}'
    at = Position(topic="whk.events", partition=3, offset=41, timestamp_ms=1_700_000_000_123)
    first, again = decode_event(payload, at), decode_event(payload, at)
    assert first.id == again.id and first.id.startswith("evt_")
    assert first.time == again.time == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc)
    assert decode_event(payload, Position(topic="whk.events", partition=3, offset=42, timestamp_ms=1_700_000_000_123)).id != first.id
    assert decode_event(payload, Position(topic="whk.events", partition=2, offset=41, timestamp_ms=1_700_000_000_123)).id != first.id
    given = decode_event(b'{"type": "t", "id": "evt_mine", "time": "2024-01-02T03:04:05Z"}', at)
    assert given.id == "evt_mine" and given.time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("subscription_ids", [["sub_a"], ["", "sub_" + "é" * 70, "x" * 300]])
def test_tasks_sharing_one_encoded_event_are_the_bytes_of_tasks_encoded_whole(subscription_ids):
    event = Event(type="order.paid", source="shop", data=json.dumps({"total": 12, "note": "é" * 80}).encode())
    routed_at = datetime(2026, 12, 2, 10, 0, 0, 123000, tzinfo=timezone.utc)
    shared = encode_tasks(subscription_ids, routed_at, event.to_record())
    assert shared == [encode_task(sid, routed_at, event.to_record()) for sid in subscription_ids]
    decoded = [DeliveryTask.from_avro(task) for task in shared]
    assert [(task.subscription_id, task.routed_at, task.event.data) for task in decoded] == \
        [(sid, routed_at, event.data) for sid in subscription_ids]
