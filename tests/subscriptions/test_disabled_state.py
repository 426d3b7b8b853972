"""Disabled by the pipeline versus paused by a user: stored, readable from older records, cleared by resume."""

from __future__ import annotations

import io
import json

import fastavro
import pytest
from cryptography.fernet import Fernet

from pipeline.codec import HISTORY_DIR, MARKER, _fingerprint
from pipeline.errors import InvalidInput
from pipeline.subscriptions.avro import from_avro, to_avro
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import SecretBox

BOX = SecretBox(Fernet.generate_key())


def subscription() -> Subscription:
    return Subscription(name="s", url="https://example.test/h", event_types=["*"])


def test_the_disabled_state_round_trips_through_avro() -> None:
    disabled = subscription().disabled("410 Gone")
    assert disabled.disabled_reason == "410 Gone" and disabled.disabled_at is not None and not disabled.paused
    assert from_avro(to_avro(disabled, BOX), BOX) == disabled


def test_a_record_of_the_previous_schema_reads_as_not_disabled() -> None:
    old_schema = fastavro.parse_schema(json.loads((HISTORY_DIR / "subscription.v4.avsc").read_text()))
    s = subscription()
    record = s.model_dump(exclude={"disabled_reason", "disabled_at"}) | {"secret": BOX.seal(s.secret)}
    body = io.BytesIO()
    body.write(MARKER + _fingerprint(old_schema))
    fastavro.schemaless_writer(body, old_schema, record)
    read = from_avro(body.getvalue(), BOX)
    assert read == s.model_copy(update={"version": 0, "based_on": None})  # written before versions, too
    assert read.disabled_reason is None and read.disabled_at is None and read.active


def test_resuming_or_pausing_ends_the_disabled_state() -> None:
    disabled = subscription().disabled("only failures for 5 days")
    resumed = disabled.patched({"active": True})
    assert resumed.active and resumed.disabled_reason is None and resumed.disabled_at is None
    paused = disabled.patched({"active": False})
    assert paused.paused and paused.disabled_reason is None
    renamed = disabled.patched({"name": "other"})
    assert renamed.disabled_reason == "only failures for 5 days"  # other changes keep it disabled


class Writer:
    def __init__(self) -> None:
        self.written: list[Subscription] = []

    def put(self, subscription: Subscription) -> None:
        self.written.append(subscription)


@pytest.mark.parametrize("field", ["disabled_reason", "disabled_at"])
def test_users_cannot_set_the_disabled_state(field: str) -> None:
    existing = subscription()
    writer = Writer()
    commands = SubscriptionCommands(writer, {existing.id: existing}.get)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as caught:
        commands.create({"name": "s", "url": "https://example.test/h", "event_types": ["*"], field: "x"})
    assert caught.value.field == field
    with pytest.raises(InvalidInput) as caught:
        commands.update(existing.id, {field: "x"})
    assert caught.value.field == field
    assert writer.written == []
