"""Which keyed events the admin API has published, for a window, so a retried publish is written once.

An event is keyed by its tenant and id: the id the producer gave, or one derived from the request's
Idempotency-Key (and the event's place in a batch), so a retry with the same key gets the same id.
After Kafka acknowledges an event, a record of it goes to the idempotency topic; every API process
reads that topic from its start at launch and follows it, so the window survives restarts and is
shared by replicas. Records older than the window are ignored, and the topic deletes them (its
retention is the window).

Within one process, requests holding the same key run one after the other. Two replicas taking
the same key at the same moment can both publish it (a record reaches the other within about
0.1 s); so can a crash between an event's acknowledgement and its record. Both copies then carry
the same id, which is the webhook-id receivers deduplicate by.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from pipeline.config import Settings
from pipeline.errors import InvalidInput
from pipeline.kafka.acked import AcknowledgedProducer, Outgoing
from pipeline.kafka.admin import TopicSpec
from pipeline.kafka.follower import TopicFollower
from pipeline.topics import TopicNames

Key = str  # JSON [tenant, event id]: unambiguous whatever the tenant holds, and the topic's key as it is
SEGMENT_MS = 3_600_000  # deletion works by whole segments: roll them hourly
FORGET_AT_ONCE = 1000  # expired entries dropped per call at most, so no call holds the loop long


class IdempotencyConflict(InvalidInput):
    """The key was used within the window for a different event."""


@dataclass(frozen=True)
class Keyed:
    """An event's key and the fingerprint of what was asked, to tell a retry from a reuse."""

    key: Key
    fingerprint: int
    field: str  # what the producer sees as the key: "Idempotency-Key", "id" or "[3].id"


def derived_event_id(tenant: str, idempotency_key: str, position: int | None) -> str:
    """The same tenant, key and place in the request always give the same id."""
    digest = hashlib.sha256(json.dumps([tenant, idempotency_key, position]).encode()).hexdigest()
    return f"evt_{digest[:32]}"


def ledger_key(tenant: str, event_id: str) -> Key:
    return json.dumps([tenant, event_id])


def fingerprint(envelope: dict) -> int:
    """64 bits of a hash of what was asked: enough to tell a retry from another event."""
    canonical = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(canonical).digest()[:8], "big")


def ledger_topic(settings: Settings) -> TopicSpec:
    window_ms = str(int(settings.idempotency_window_s * 1000))
    return TopicSpec(name=TopicNames.from_settings(settings).idempotency, partitions=1,
                     config={"cleanup.policy": "delete", "retention.ms": window_ms,
                             "segment.ms": str(min(SEGMENT_MS, int(window_ms)))})


class IdempotencyLedger:
    def __init__(self, settings: Settings, producer: AcknowledgedProducer):
        self.topic = TopicNames.from_settings(settings).idempotency
        self.window_ms = int(settings.idempotency_window_s * 1000)
        self._producer = producer
        # key -> when it was published (ms) and its fingerprint, packed in one int: a million keys
        # then take about 200 MB, half of what tuples would. Oldest first.
        self._seen: dict[Key, int] = {}
        self._in_flight: dict[Key, asyncio.Event] = {}
        self.follower = TopicFollower(settings, self.topic, self._apply)

    def __len__(self) -> int:
        """How many keys are remembered (expired ones go as later calls come)."""
        return len(self._seen)

    def published(self, keyed: Keyed) -> bool:
        """True if the key's event was published within the window; raises if for another event."""
        self._forget_expired()
        entry = self._seen.get(keyed.key)
        if entry is None or _published_at(entry) < _now_ms() - self.window_ms:
            return False
        if _fingerprint_of(entry) != keyed.fingerprint:
            raise IdempotencyConflict(keyed.field, "was used within the idempotency window for a different "
                                      "event; send the same event again, or use a new key")
        return True

    @asynccontextmanager
    async def holding(self, keys: Sequence[Key]) -> AsyncIterator[None]:
        """Runs the block while no other request of this process holds any of these keys."""
        while busy := [self._in_flight[key] for key in keys if key in self._in_flight]:
            await busy[0].wait()
        done = asyncio.Event()
        held = {key: done for key in keys}  # taken all at once, so two requests never wait on each other
        self._in_flight.update(held)
        try:
            yield
        finally:
            for key in held:
                del self._in_flight[key]
            done.set()

    async def record(self, published: Sequence[Keyed]) -> None:
        """Call once the events are in Kafka: remembers them here at once and in the topic for every process."""
        now = _now_ms()
        for keyed in published:
            self._seen.pop(keyed.key, None)  # a key back after its window goes to the end, with the newest
            self._seen[keyed.key] = _entry(now, keyed.fingerprint)
        await self._producer.send([Outgoing(self.topic, keyed.key.encode(), json.dumps(
            {"at": now, "fingerprint": keyed.fingerprint}).encode()) for keyed in published])

    def _apply(self, record: ConsumerRecord) -> None:
        value = json.loads(record.value)
        if value["at"] >= _now_ms() - self.window_ms:
            self._seen.setdefault(record.key.decode(), _entry(value["at"], value["fingerprint"]))

    def _forget_expired(self) -> None:
        """Drops the oldest entries past the window: keys are remembered about in publish order."""
        horizon = _now_ms() - self.window_ms
        for _ in range(FORGET_AT_ONCE):
            oldest = next(iter(self._seen), None)
            if oldest is None or _published_at(self._seen[oldest]) >= horizon:
                return
            del self._seen[oldest]


def _entry(published_at_ms: int, fingerprint_bits: int) -> int:
    return published_at_ms << 64 | fingerprint_bits


def _published_at(entry: int) -> int:
    return entry >> 64


def _fingerprint_of(entry: int) -> int:
    return entry & (1 << 64) - 1


def _now_ms() -> int:
    return int(time.time() * 1000)
