"""POST /v1/events bodies: validation naming the field, the caller's tenant, ids from idempotency keys."""

from __future__ import annotations

import json

import pytest

from pipeline.tokens import SCOPES, Caller, parse_tokens
from pipeline.api.event_intake import MAX_BATCH, submissions
from pipeline.api import idempotency
from pipeline.api.idempotency import Keyed, derived_event_id, ledger_key
from pipeline.config import Settings
from pipeline.errors import InvalidInput

ADMIN = Caller("*")
ACME = Caller("acme")
LIMIT = 1024


def test_one_envelope_becomes_the_sdks_event() -> None:
    [found] = submissions({"type": "order.paid", "ordering_key": "o-1", "data": {"total": 12}}, ADMIN, None, LIMIT)
    assert (found.event.type, found.event.ordering_key, json.loads(found.event.data)) == ("order.paid", "o-1",
                                                                                          {"total": 12})
    assert found.event.partition_key == b"o-1"
    assert found.keyed is None  # no id and no Idempotency-Key: nothing to deduplicate


def test_a_tenant_token_publishes_its_own_tenants_events_only() -> None:
    [found] = submissions({"type": "order.paid"}, ACME, None, LIMIT)
    assert found.event.tenant == "acme"
    with pytest.raises(InvalidInput) as refused:
        submissions([{"type": "a.b"}, {"type": "order.paid", "tenant": "globex"}], ACME, None, LIMIT)
    assert refused.value.field == "[1].tenant"


def test_the_pipelines_own_event_types_need_an_admin_token() -> None:
    with pytest.raises(InvalidInput) as refused:
        submissions({"type": "pipeline.subscription.disabled"}, ACME, None, LIMIT)
    assert refused.value.field == "type"
    assert submissions({"type": "pipeline.subscription.disabled"}, ADMIN, None, LIMIT)[0].event.tenant == ""


@pytest.mark.parametrize("body, field", [
    ({"data": {}}, "type"),
    ({"type": "bad type!"}, "type"),
    ({"type": "a.b", "colour": "red"}, "colour"),
    ({"type": "a.b", "time": "yesterday"}, "time"),
    ([{"type": "a.b"}, {"type": "a.b", "ordering_key": 7}], "[1].ordering_key"),
    ([{"type": "a.b"}, "not an object"], "[1]"),
    ("not an object", "body"),
    ([], "body"),
    ([{"type": "a.b", "id": "evt_1"}, {"type": "c.d", "id": "evt_1"}], "[1].id"),
    ({"type": "a.b", "data": {"pad": "x" * LIMIT}}, "data"),
])
def test_bad_input_names_the_field(body: object, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        submissions(body, ADMIN, None, LIMIT)
    assert refused.value.field == field


def test_a_batch_has_a_ceiling() -> None:
    with pytest.raises(InvalidInput) as refused:
        submissions([{"type": "a.b"}] * (MAX_BATCH + 1), ADMIN, None, LIMIT)
    assert refused.value.field == "body" and str(MAX_BATCH) in refused.value.problem


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "naïve"])
def test_an_idempotency_key_is_printable_ascii(key: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        submissions({"type": "a.b"}, ADMIN, key, LIMIT)
    assert refused.value.field == "Idempotency-Key"


def test_an_idempotency_key_gives_every_event_a_stable_id_of_its_tenant_and_place() -> None:
    first = submissions([{"type": "a.b"}, {"type": "a.b"}], ACME, "order-7", LIMIT)
    again = submissions([{"type": "a.b"}, {"type": "a.b"}], ACME, "order-7", LIMIT)
    assert [s.event.id for s in first] == [s.event.id for s in again]
    assert first[0].event.id != first[1].event.id
    assert first[0].event.id == derived_event_id("acme", "order-7", 0)
    assert derived_event_id("globex", "order-7", 0) != first[0].event.id
    assert [s.keyed.field for s in first] == ["Idempotency-Key"] * 2


def test_a_given_id_is_the_key_and_wins_over_the_header() -> None:
    [found] = submissions({"type": "a.b", "id": "evt_mine"}, ACME, "order-7", LIMIT)
    assert found.event.id == "evt_mine"
    assert found.keyed.key == ledger_key("acme", "evt_mine") and found.keyed.field == "id"


def test_the_fingerprint_tells_a_retry_from_a_different_event() -> None:
    [first] = submissions({"type": "a.b", "data": {"n": 1}}, ACME, "k", LIMIT)
    [retry] = submissions({"data": {"n": 1}, "type": "a.b"}, ACME, "k", LIMIT)
    [other] = submissions({"type": "a.b", "data": {"n": 2}}, ACME, "k", LIMIT)
    assert first.keyed.fingerprint == retry.keyed.fingerprint != other.keyed.fingerprint


def test_tokens_keep_their_old_meaning_and_can_be_scoped() -> None:
    grants = parse_tokens(json.dumps({"adm": "*", "tok_acme": "acme",
                                      "pub_acme": {"tenant": "acme", "scopes": ["publish"]}}))
    assert (grants["adm"].tenant, grants["adm"].scopes) == ("*", SCOPES)
    assert (grants["tok_acme"].tenant, grants["tok_acme"].scopes) == ("acme", SCOPES)
    assert grants["pub_acme"].scopes == {"publish"}


@pytest.mark.parametrize("value, field", [
    ({"s3cret-token": {"tenant": "acme", "scopes": ["delete"]}}, "PIPELINE_API_TOKENS: entry 1: scopes"),
    ({"adm": "*", "s3cret-token": {"scopes": ["publish"]}}, "PIPELINE_API_TOKENS: entry 2"),
    ({"s3cret-token": {"tenant": "acme", "scopes": []}}, "PIPELINE_API_TOKENS: entry 1: scopes"),
    (["s3cret-token"], "PIPELINE_API_TOKENS"),
])
def test_bad_tokens_are_named_by_position_never_by_token(value: object, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_tokens(json.dumps(value))
    assert refused.value.field == field
    assert "s3cret-token" not in str(refused.value)


class NoKafka:
    async def send(self, messages: list) -> None:
        self.sent = messages


async def test_the_ledger_forgets_keys_past_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000]
    monkeypatch.setattr(idempotency, "_now_ms", lambda: now[0])
    ledger = idempotency.IdempotencyLedger(Settings(idempotency_window_s=60), NoKafka())
    first, second = (Keyed(ledger_key("acme", f"evt_{n}"), n, "id") for n in (1, 2))
    await ledger.record([first])
    now[0] += 30_000
    await ledger.record([second])
    assert ledger.published(first) and ledger.published(second) and len(ledger) == 2

    now[0] += 45_000  # the first is past the window, the second is not
    assert not ledger.published(first) and ledger.published(second)
    assert len(ledger) == 1
    await ledger.record([first])  # published again: remembered anew, and forgotten after the second
    now[0] += 30_000
    assert not ledger.published(second) and ledger.published(first) and len(ledger) == 1
