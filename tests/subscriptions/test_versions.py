"""Versions and compare-and-set: every process applies the subscriptions topic with the same rule,
so of two changes made from one version the first written wins everywhere, and a secret rotated
at the moment the dispatcher disables the endpoint survives."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta

import fastavro
import pytest
from cryptography.fernet import Fernet

from pipeline.codec import HISTORY_DIR, MARKER, _fingerprint
from pipeline.config import Settings
from pipeline.dispatcher.disabling import DISABLED_EVENT, Disabler
from pipeline.models import decode_event
from pipeline.subscriptions.avro import from_avro, to_avro
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.records import apply_record
from pipeline.subscriptions.secretbox import SecretBox, load_box
from pipeline.subscriptions.snapshot import Snapshot, read_snapshot
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.topics import every_record

BOX = SecretBox(Fernet.generate_key())
OVERLAP = timedelta(hours=24)


def subscription() -> Subscription:
    return Subscription(name="s", url="https://example.test/h", event_types=["*"])


def replay(*records: Subscription | str) -> tuple[dict[str, Subscription], list[bool]]:
    """The table after these records, in this order (an id alone is a tombstone), and which applied."""
    table: dict[str, Subscription] = {}
    applied = [apply_record(table, (r if isinstance(r, str) else r.id).encode(),
                            None if isinstance(r, str) else to_avro(r, BOX), BOX) for r in records]
    return table, applied


def test_every_change_is_the_next_version_based_on_the_one_it_was_made_from() -> None:
    created = subscription()
    changes = [created.patched({"name": "n"}), created.rotated(OVERLAP), created.disabled("410 Gone")]
    assert (created.version, created.based_on) == (1, 0)
    assert all((changed.version, changed.based_on) == (2, 1) for changed in changes)
    assert created.public_view()["version"] == 1 and "based_on" not in created.public_view()


def test_of_two_changes_made_from_one_version_the_first_written_wins() -> None:
    created = subscription()
    rotated, disabled = created.rotated(OVERLAP), created.disabled("410 Gone")
    table, applied = replay(created, rotated, disabled)
    assert applied == [True, True, False] and table[created.id] == rotated
    table, applied = replay(created, disabled, rotated, disabled.restated(), disabled.rotated(OVERLAP))
    assert applied == [True, True, False, True, True]
    assert table[created.id].disabled_reason == "410 Gone" and table[created.id].version == 3


def test_a_change_made_before_a_delete_does_not_bring_the_subscription_back() -> None:
    created = subscription()
    table, applied = replay(created, created.id, created.disabled("410 Gone"))
    assert table == {} and applied == [True, True, False]


def test_records_written_before_versions_apply_whatever_is_there() -> None:
    old_schema = fastavro.parse_schema(json.loads((HISTORY_DIR / "subscription.v5.avsc").read_text()))
    created = subscription()
    record = to_record(created.rotated(OVERLAP)) | {"name": "written by an older process"}
    body = io.BytesIO()
    body.write(MARKER + _fingerprint(old_schema))
    fastavro.schemaless_writer(body, old_schema, {k: v for k, v in record.items() if k not in ("version", "based_on")})
    table, _ = replay(created, created.patched({"name": "v2"}))
    assert table[created.id].version == 2
    assert apply_record(table, created.id.encode(), body.getvalue(), BOX)
    old = table[created.id]
    assert (old.name, old.version, old.based_on) == ("written by an older process", 0, None)
    assert apply_record(table, created.id.encode(), to_avro(old.patched({"name": "v1 again"}), BOX), BOX)


def to_record(changed: Subscription) -> dict:
    """What to_avro writes, as a dict: the codec's own decoding of it."""
    from pipeline.codec import codec

    return codec("subscription").decode(to_avro(changed, BOX))


@pytest.mark.integration
async def test_a_rotation_made_as_the_dispatcher_disables_survives(settings: Settings) -> None:
    """The dispatcher's table has not read the rotation yet; its disabling was decided on the
    version before: the rotation wins in every reader, nothing is announced, and the topic's last
    record of the subscription is one every reader applies."""
    api = SubscriptionCommands(SubscriptionWriter(settings), lambda i: read_snapshot(settings).get(i))
    created = api.create({"name": "s", "url": "https://example.test/h", "event_types": ["*"]})
    table = SubscriptionTable(settings)
    follower = asyncio.create_task(table.run())
    try:
        await table.wait_loaded()
        seen = table.get(created.id)
        rotated = api.rotate_secret(created.id, OVERLAP)  # on this thread: the table reads nothing meanwhile
        assert await Disabler(settings, table).disable(seen, "the endpoint answered 410 Gone") is False
        held = table.get(created.id)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    stored = read_snapshot(settings)[created.id]
    assert stored == held and stored.secret == rotated.secret and stored.active and stored.version == 2
    events = [decode_event(r.value) for r in every_record(settings, TopicNames.from_settings(settings).events)]
    assert [e for e in events if e.type == DISABLED_EVENT] == []
    last = every_record(settings, TopicNames.from_settings(settings).subscriptions)[-1]
    assert from_avro(last.value, load_box(settings)) == rotated.restated()


@pytest.mark.integration
async def test_the_disabling_holds_when_a_rotation_is_made_from_the_version_before(settings: Settings) -> None:
    """The other order: the API's view has not read the disabling; its rotation loses in the log,
    is made again on top of the disabled version, and both hold."""
    setup = SubscriptionCommands(SubscriptionWriter(settings), lambda i: read_snapshot(settings).get(i))
    created = setup.create({"name": "s", "url": "https://example.test/h", "event_types": ["*"]})
    lagging = Snapshot(settings)  # the API's view, read before the disabling
    table = SubscriptionTable(settings)
    follower = asyncio.create_task(table.run())
    try:
        await table.wait_loaded()
        assert await Disabler(settings, table).disable(table.get(created.id), "the endpoint answered 410 Gone")
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    api = SubscriptionCommands(SubscriptionWriter(settings), lagging.get, lagging.settle)
    rotated = await asyncio.to_thread(api.rotate_secret, created.id, OVERLAP)
    stored = read_snapshot(settings)[created.id]
    assert stored == rotated and stored.version == 3
    assert stored.disabled_reason == "the endpoint answered 410 Gone" and not stored.active
    assert stored.signing_secrets() == [rotated.secret, created.secret]
