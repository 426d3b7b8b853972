"""Two dispatchers share the endpoint topics; one is killed with SIGKILL mid-stream while the
endpoint fails and hangs for a while. Nothing is lost, order per key holds, duplicates are only
of messages that were in flight when the dispatcher died, and ClickHouse agrees with the receiver:
one attempt counted per request it got, those the killed dispatcher never recorded as `unknown`."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.kafka.admin import ensure_core_topics
from pipeline.producer import EventPublisher
from pipeline.receiver import ReceivedDelivery, Receiver
from pipeline.results.sink import results_group_id
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.topics import TopicNames
from tests.conftest import results_auth
from tests.polling import wait_until
from tests.stages import running_stages, stage_logs

EVENTS, KEYS = 600, 20
# Generous, so that on a loaded 2-core machine only the deliberate hangs time out: a delivery that
# merely answered late would be delivered again after the kill and look like a lost commit.
TIMEOUT_MS, HANG_S = 1500, 2.0
STAGES = ["pipeline.router", "pipeline.dispatcher", "pipeline.dispatcher#2", "pipeline.results"]


class TroubledEndpoint:
    """Fails every third request and hangs now and then during its troubled spell; answers 204 after."""

    def __init__(self) -> None:
        self.troubled = True
        self.lock = threading.Lock()
        self.successes: list[tuple[str, str, int, float]] = []  # event id, key, seq, when
        self.requests = 0
        self.received: Counter[str] = Counter()  # requests per webhook-id (the event's id: no batches here)

    async def respond(self, delivery: ReceivedDelivery) -> int:
        with self.lock:
            self.requests += 1
            self.received[delivery.headers["webhook-id"]] += 1
            count = self.requests
        if self.troubled and count % 3 == 0:
            return 503
        if self.troubled and count % 50 == 0:
            # Well past the timeout: the dispatcher has given up on it, so it is no delivery.
            await asyncio.sleep(HANG_S)
            return 204
        body = json.loads(delivery.body)
        with self.lock:
            self.successes.append((body["id"], body["ordering_key"], body["data"]["seq"], time.time()))
        return 204


@pytest.mark.integration
def test_a_killed_dispatcher_loses_nothing_and_breaks_no_order(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"retry_schedule_s": (0.0,) + (0.3,) * 40, "results_outcome_grace_s": 3.0})
    ensure_core_topics(settings)
    endpoint = TroubledEndpoint()
    receiver = Receiver(respond=endpoint.respond)
    base_url = receiver.start()
    subscription = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None).create(
        {"name": "chaos", "url": f"{base_url}/chaos", "event_types": ["*"], "timeout_ms": TIMEOUT_MS})
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, STAGES, logs) as processes:
            try:
                # Both share the shards; the one that owns the endpoint is killed, so the other takes it over.
                wait_until(lambda: all("shards gained" in (logs / f"{n}.log").read_text(errors="replace")
                                       for n in ("pipeline.dispatcher", "pipeline.dispatcher#2")), what="two owners")
                victim = wait_until(lambda: _owning_dispatcher(logs), what="the endpoint's owner")
                killed_at = _publish_and_kill(settings, endpoint, processes[victim])
                endpoint.troubled = False
                wait_until(lambda: len({s[0] for s in endpoint.successes}) >= EVENTS, timeout_s=120,
                           what="every event delivered")
                counted = wait_until(lambda: _distinct_delivered(settings, subscription.id) >= EVENTS and
                                     _distinct_delivered(settings, subscription.id), timeout_s=60,
                                     what="ClickHouse to count every event")
                attempts = wait_until(lambda: _attempts_once_settled(settings, subscription.id), timeout_s=60,
                                      what="the results sink to settle every attempt")
            except AssertionError:
                print(stage_logs(logs))
                raise
    finally:
        receiver.stop()
    _assert_order_and_duplicates(endpoint.successes, killed_at)
    assert len({s[0] for s in endpoint.successes}) == EVENTS
    # A killed dispatcher can lose the record of a delivery it made but never committed; that
    # message is delivered (and recorded) again, so ClickHouse holds at least one success per
    # event and never more than the receiver saw.
    assert EVENTS <= counted <= len(endpoint.successes)
    # Every request the endpoint got (failed, hung or answered) is one attempt, the killed
    # dispatcher's requests in flight too (recorded as unknown by the results sink), and none twice.
    # Only a request the dispatcher was killed about to send, its intent written but nothing
    # received, is an unknown attempt more than the endpoint saw.
    stored = Counter(event for event, _ in attempts)
    unknown = Counter(event for event, outcome in attempts if outcome == "unknown")
    assert [e for e in stored | endpoint.received
            if not stored[e] - unknown[e] <= endpoint.received[e] <= stored[e]] == []  # per event
    never_received = len(attempts) - endpoint.requests
    assert 0 <= never_received <= unknown.total(), \
        f"{len(attempts)} attempts stored, {endpoint.requests} requests received, {unknown.total()} unknown"


def _owning_dispatcher(logs: Path) -> str | None:
    """The dispatcher that fetches the endpoint now, from what each logged last about its partitions."""
    owners = []
    for name in ("pipeline.dispatcher", "pipeline.dispatcher#2"):
        counts = re.findall(r"\((\d+) (?:in all|left)\)", (logs / f"{name}.log").read_text(errors="replace"))
        if counts and counts[-1] != "0":
            owners.append(name)
    return owners[0] if len(owners) == 1 else None


def _publish_and_kill(settings: Settings, endpoint: TroubledEndpoint, victim) -> float:
    with EventPublisher(settings) as publisher:
        for seq in range(EVENTS):
            publisher.publish_fields(type="chaos.event", ordering_key=f"key-{seq % KEYS}",
                                     data=json.dumps({"seq": seq}).encode())
            if seq == EVENTS // 3:
                publisher.flush()
                # Mid-stream: once deliveries are flowing, the second dispatcher dies without a goodbye.
                wait_until(lambda: len(endpoint.successes) >= 50, what="deliveries flowing")
                victim.send_signal(signal.SIGKILL)
                killed_at = time.time()
    return killed_at


def _assert_order_and_duplicates(successes: list[tuple[str, str, int, float]], killed_at: float) -> None:
    first_seen: dict[str, float] = {}
    sequences: dict[str, list[int]] = defaultdict(list)
    duplicates = []
    for event_id, key, seq, when in successes:
        if event_id in first_seen:
            duplicates.append(event_id)
            continue
        first_seen[event_id] = when
        sequences[key].append(seq)
    for key, seen in sequences.items():
        assert seen == sorted(seen), f"order broken for {key}: {seen}"
    # A duplicate is a message delivered before the kill whose offset was not yet committed.
    assert all(first_seen[event_id] <= killed_at + 0.5 for event_id in duplicates), duplicates


def _attempts_once_settled(settings: Settings, subscription_id: str) -> list[tuple[str, str]] | None:
    """The attempts ClickHouse holds (event id, outcome), once the results sink has read and committed
    every results record: it commits no further than an attempt still open (no outcome yet)."""
    results = TopicNames.from_settings(settings).results
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": results_group_id(settings)})
    try:
        partitions = [TopicPartition(results, n) for n in range(settings.results_partitions)]
        committed = [tp.offset for tp in consumer.committed(partitions, timeout=10)]
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
    finally:
        consumer.close()
    if [max(offset, 0) for offset in committed] != ends:
        return None
    stats = httpx.get(f"http://127.0.0.1:{settings.results_port}/v1/stats", params={"subscription_id": subscription_id},
                      timeout=10, headers=results_auth(settings)).json()["subscriptions"]
    rows = httpx.get(f"http://127.0.0.1:{settings.results_port}/v1/attempts", params={
        "subscription_id": subscription_id, "limit": "1000"}, timeout=10, headers=results_auth(settings)).json()["attempts"]
    assert stats and stats[0]["attempts"] == len(rows) < 1000, "the rollup and the rows disagree, or rows were cut"
    return [(row["event_id"], row["outcome"]) for row in rows]


def _distinct_delivered(settings: Settings, subscription_id: str) -> int:
    response = httpx.get(f"http://127.0.0.1:{settings.results_port}/v1/stats",
                         params={"subscription_id": subscription_id}, timeout=10, headers=results_auth(settings))
    rows = response.json()["subscriptions"]
    return rows[0]["delivered"] if rows else 0
