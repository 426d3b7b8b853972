"""The compacted subscriptions topic, written by the commands and read back as a live table."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.errors import InvalidInput
from pipeline.kafka.admin import admin_client
from pipeline.kafka.offsets import watermarks
from pipeline.models import new_secret
from pipeline.subscriptions.commands import SubscriptionCommands, UnknownSubscription
from pipeline.subscriptions.secretbox import SEALED_PREFIX
from pipeline.subscriptions.snapshot import read_snapshot
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.polling import wait_until


def commands_for(settings: Settings) -> SubscriptionCommands:
    return SubscriptionCommands(SubscriptionWriter(settings), lambda i: read_snapshot(settings).get(i))


@pytest.mark.integration
async def test_the_live_table_follows_creates_updates_and_tombstones(settings: Settings) -> None:
    commands = commands_for(settings)
    existing = commands.create({"name": "before", "url": "https://example.test/a", "event_types": ["*"]})
    table = SubscriptionTable(settings)
    follower = asyncio.create_task(table.run())
    try:
        await table.wait_loaded(timeout_s=30)
        assert table.get(existing.id) == existing  # loaded from the beginning of the topic
        created = await asyncio.to_thread(
            commands.create, {"name": "after", "url": "https://example.test/b", "event_types": ["user.*"]})
        await _until(lambda: table.get(created.id) is not None)
        await asyncio.to_thread(commands.update, created.id, {"active": False})
        await _until(lambda: table.get(created.id).active is False)
        assert table.get(created.id).secret == created.secret  # a partial update keeps the rest
        await asyncio.to_thread(commands.delete, existing.id)
        await _until(lambda: table.get(existing.id) is None)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


@pytest.mark.integration
def test_creating_makes_the_endpoint_topic_with_its_partitions(settings: Settings) -> None:
    created = commands_for(settings).create({"name": "s", "url": "https://example.test/a", "event_types": ["*"]})
    topic = TopicNames.from_settings(settings).endpoint(created.id)
    admin = admin_client(settings.kafka_bootstrap_servers)
    # The broker's metadata may trail the controller that created the topic by a moment.
    partitions = wait_until(lambda: len(admin.list_topics(topic, timeout=10).topics[topic].partitions), timeout_s=10,
                            what="the endpoint topic in the broker's metadata")
    assert partitions == settings.endpoint_partitions == 1


@pytest.mark.integration
def test_refusals_name_the_problem(settings: Settings) -> None:
    commands = commands_for(settings)
    created = commands.create({"name": "s", "url": "https://example.test/a", "event_types": ["*"], "id": "sub_fixed"})
    with pytest.raises(InvalidInput, match="exists already"):
        commands.create({"name": "s", "url": "https://example.test/a", "event_types": ["*"], "id": created.id})
    with pytest.raises(UnknownSubscription):
        commands.update("sub_missing", {"active": False})
    with pytest.raises(InvalidInput) as caught:
        commands.update(created.id, {"url": "javascript:alert(1)"})
    assert caught.value.field == "url"
    assert read_snapshot(settings)[created.id].url == "https://example.test/a"  # nothing written


@pytest.mark.integration
def test_secrets_and_credentials_are_sealed_in_the_topic(settings: Settings) -> None:
    commands = commands_for(settings)
    secret = new_secret()
    basic = commands.create({"name": "b", "url": "https://example.test/a", "event_types": ["*"], "secret": secret,
                             "auth": {"type": "basic", "username": "ada", "password": "pa55-plaintext"}})
    bearer = commands.create({"name": "t", "url": "https://example.test/b", "event_types": ["*"],
                              "auth": {"type": "bearer", "token": "bear3r-plaintext"}})
    rotated = commands.rotate_secret(bearer.id, timedelta(hours=1))
    values = raw_values(settings, TopicNames.from_settings(settings).subscriptions)
    assert len(values) == 3
    plaintexts = [secret, bearer.secret, rotated.secret, "pa55-plaintext", "bear3r-plaintext"]
    for plaintext in plaintexts:
        key = plaintext.removeprefix("whsec_").encode()
        assert not any(plaintext.encode() in value or key in value for value in values), plaintext
    # Sealed on write: one Fernet token per secret and credential (the rotated record holds two secrets).
    assert [value.count(SEALED_PREFIX.encode()) for value in values] == [2, 2, 3]
    stored = read_snapshot(settings)
    assert (stored[basic.id].secret, stored[basic.id].auth.password) == (secret, "pa55-plaintext")
    assert stored[bearer.id].signing_secrets() == [rotated.secret, bearer.secret]
    assert stored[bearer.id].auth.token == "bear3r-plaintext"


def raw_values(settings: Settings, topic: str) -> list[bytes]:
    """Every record value of a one-partition topic, as bytes on the broker."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"raw-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    partition = TopicPartition(topic, 0)
    try:
        end = watermarks(consumer, partition)[1]
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(values) < end and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
        return values
    finally:
        consumer.close()


async def _until(condition, timeout_s: float = 10.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout_s)


@pytest.mark.integration
async def test_catching_up_reads_every_change_written_before_a_moment(settings: Settings) -> None:
    commands = commands_for(settings)
    table = SubscriptionTable(settings)
    follower = asyncio.create_task(table.run())
    try:
        await table.wait_loaded(timeout_s=30)
        created = [await asyncio.to_thread(commands.create, {"name": f"race {n}", "url": "https://example.test/r",
                                                             "event_types": [f"race{n}.*"]}) for n in range(5)]
        written = time.time()
        # Several waiting at once share one look at the end offsets; each returns caught up.
        await asyncio.gather(*(table.caught_up_to(written) for _ in range(3)))
        assert [table.get(subscription.id) for subscription in created] == created
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
