import json
from datetime import datetime, timezone

import pytest

from pipeline.dispatcher.request import build_request, envelope_body
from pipeline.errors import InvalidInput
from pipeline.models import Event
from pipeline.subscriptions.model import Subscription


def test_json_data_is_sent_inside_the_envelope_unchanged() -> None:
    event = Event(id="evt_1", type="user.created", source="svc", ordering_key="k",
                  time=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc), data=b'{"b": [1, 2], "a": "x"}')
    body = json.loads(envelope_body(event))
    assert body == {"id": "evt_1", "type": "user.created", "source": "svc", "tenant": "",
                    "time": "2026-01-02T03:04:05.678000Z", "ordering_key": "k", "data": {"b": [1, 2], "a": "x"}}


def test_other_content_goes_as_base64() -> None:
    event = Event(type="blob.stored", data=b"\x00\x01", content_type="application/octet-stream")
    body = json.loads(envelope_body(event))
    assert body["data_base64"] == "AAE=" and body["content_type"] == "application/octet-stream"


def test_headers_carry_the_event_id_and_a_v1_signature() -> None:
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"])
    event = Event(id="evt_42", type="t")
    headers = build_request(subscription, [event], "evt_42", 1_700_000_000).headers
    assert headers["webhook-id"] == "evt_42"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"].startswith("v1,")


def test_a_body_over_the_limit_is_refused_naming_its_size() -> None:
    import pytest

    from pipeline.dispatcher.request import RequestTooLarge

    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"])
    event = Event(type="t", data=b'{"pad": "' + b"x" * 2000 + b'"}')
    with pytest.raises(RequestTooLarge, match="over the limit of 1000"):
        build_request(subscription, [event], event.id, 0, max_body_bytes=1000)


def test_credentials_are_masked_in_the_headers_kept_with_an_attempt() -> None:
    from pipeline.subscriptions.credentials import masked

    kept = masked({"authorization": "Bearer s3cr3t", "x-api-key": "k", "webhook-signature": "v1,abc",
                   "content-type": "application/json"})
    assert kept == {"authorization": "Bearer ***", "x-api-key": "***", "webhook-signature": "v1,abc",
                    "content-type": "application/json"}


@pytest.mark.parametrize("fields", [{}, {"body_format": "raw"}, {"template": {"a": "{{ data.a }}"}},
                                    {"body_format": "form", "template": {"a": "{{ data.a }}"}}])
@pytest.mark.parametrize("data", [b'{"a": NaN}', b'{"a": [-Infinity]}', b'{"a": 1.5e999}'])
def test_data_holding_nan_or_infinity_is_never_sent(fields: dict, data: bytes) -> None:
    """The router refuses such events; a task routed before it did is refused here, in every format."""
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"], **fields)
    with pytest.raises(InvalidInput) as caught:
        build_request(subscription, [Event(type="t", data=data)], "evt_1", 0)
    assert caught.value.field.startswith("data")


def test_data_that_only_looks_like_nan_in_a_string_is_sent_as_it_is() -> None:
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"])
    data = b'{"note": "NaN or Infinity, 1e999"}'
    body = build_request(subscription, [Event(type="t", data=data)], "evt_1", 0).body
    assert json.loads(body)["data"] == {"note": "NaN or Infinity, 1e999"}


async def test_the_headers_kept_with_an_attempt_hide_the_subscriptions_own_values() -> None:
    """They are sealed at rest in the subscriptions topic: ClickHouse gets their names only."""
    from pipeline.dispatcher.attempt import attempt_delivery
    from pipeline.dispatcher.http import HttpResponse
    from pipeline.models import DeliveryTask, utcnow

    class Answering:
        async def send(self, *args: object, **kwargs: object) -> HttpResponse:
            return HttpResponse(204, {}, b"")

    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"],
                                headers={"X-Tenant-Pin": "pin-4711", "x-api-key": "k3y", "user-agent": None},
                                auth={"type": "basic", "username": "ada", "password": "pa55"})
    task = DeliveryTask(subscription_id=subscription.id, routed_at=utcnow(), event=Event(type="t"))
    async def announce(intents: list[dict]) -> None:
        pass

    (record,) = (await attempt_delivery(Answering(), subscription, [task], 1, 1 << 20, announce=announce)).records
    kept = record["request_headers"]
    assert (kept["x-tenant-pin"], kept["x-api-key"], kept["authorization"]) == ("***", "***", "Basic ***")
    assert kept["content-type"] == "application/json" and "user-agent" not in kept
    assert not any(secret in json.dumps(kept) for secret in ("pin-4711", "k3y", "pa55", "YWRhOnBhNTU="))
