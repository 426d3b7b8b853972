import json
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet

from pipeline.errors import InvalidEvent, InvalidInput
from pipeline.models import DeliveryTask, Event, decode_event, new_secret, utcnow, validated
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
