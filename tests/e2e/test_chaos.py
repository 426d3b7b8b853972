"""Stages killed with SIGKILL mid-stream, and the broker away for a minute, under a steady stream
of events numbered per ordering key: every event is delivered, order per key holds, duplicates
are only of messages in flight when the trouble struck and carry the same `webhook-id`, and no
stage needed a hand (a killed stage is started again as `make run`'s supervisor would; through
the broker's outage no stage exits at all). ClickHouse counts at least every event the receiver
got: a delivery made but not yet committed when a dispatcher dies is made and recorded again; with
a dispatcher killed, one attempt is counted per request the endpoint got, those the killed
dispatcher never recorded as `unknown`."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.devstack.kafka_broker import own_broker
from pipeline.producer import EventPublisher
from pipeline.results.sink import results_group_id
from pipeline.topics import TopicNames
from tests.conftest import fresh_settings, results_auth
from tests.e2e.chaos import (
    EVENT,
    Delivered,
    RecordingEndpoint,
    SteadyStream,
    assert_delivered_in_order,
    clickhouse_stats,
    log_of,
    started_receiver,
    subscribe,
)
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages, start_stage

EVENTS, KEYS = 600, 20
# Generous, so that on a loaded 2-core machine only the deliberate hangs time out: a delivery that
# merely answered late would be delivered again after the kill and look like a lost commit.
TIMEOUT_MS, HANG_S = 1500, 2.0
STAGES = ["pipeline.router", "pipeline.dispatcher", "pipeline.results"]
TWO_DISPATCHERS = [*STAGES, "pipeline.dispatcher#2"]
OUTAGE_S = 60.0
PER_SECOND = 60


class TroubledEndpoint(RecordingEndpoint):
    """Fails every third request and hangs now and then during its troubled spell; answers 204 after."""

    def __init__(self) -> None:
        super().__init__()
        self.troubled = True

    async def trouble(self, request_number: int) -> int | None:
        if self.troubled and request_number % 3 == 0:
            return 503
        if self.troubled and request_number % 50 == 0:
            # Well past the timeout: the dispatcher has given up on it, so it is no delivery.
            await asyncio.sleep(HANG_S)
            return 204
        return None


class SlowEndpoint(RecordingEndpoint):
    """Takes a second over each delivery while slow, so that some are always in flight: those in
    flight when the broker goes away are answered while it is away, and their records wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = True

    async def trouble(self, request_number: int) -> int | None:
        if self.slow:
            await asyncio.sleep(1.0)
        return None


@pytest.mark.integration
def test_a_killed_dispatcher_loses_nothing_and_breaks_no_order(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"retry_schedule_s": (0.0,) + (0.3,) * 40, "results_outcome_grace_s": 3.0})
    endpoint = TroubledEndpoint()
    receiver, base_url = started_receiver(endpoint)
    subscription = subscribe(settings, base_url, warm_up=False, timeout_ms=TIMEOUT_MS)  # one endpoint, one owner
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, TWO_DISPATCHERS, logs) as processes:
            with logs_on_failure(logs):
                # Both share the shards; the one that owns the endpoint is killed, so the other takes it over.
                wait_until(lambda: all("shards gained" in log_of(logs, n)
                                       for n in ("pipeline.dispatcher", "pipeline.dispatcher#2")), what="two owners")
                victim = wait_until(lambda: _owning_dispatcher(logs), what="the endpoint's owner")
                killed_at, in_flight = _publish_and_kill(settings, endpoint, processes[victim])
                endpoint.troubled = False
                counted = _all_delivered(settings, endpoint, subscription.id)
                attempts = wait_until(lambda: _attempts_once_settled(settings, subscription.id), timeout_s=60,
                                      what="the results sink to settle every attempt")
    finally:
        receiver.stop()
    duplicates = assert_delivered_in_order(endpoint.successes, EVENTS, duplicates_below_seq=in_flight)
    first_seen = _first_seen(endpoint.successes)
    # A duplicate is a message delivered before the kill whose offset was not yet committed.
    assert all(first_seen[d.event_id] <= killed_at + 0.5 for d in duplicates), duplicates
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


@pytest.mark.integration
@pytest.mark.parametrize("victim", ["pipeline.router", "pipeline.results"])
def test_a_killed_stage_started_again_loses_nothing_and_breaks_no_order(settings: Settings, tmp_path: Path,
                                                                         victim: str) -> None:
    endpoint = RecordingEndpoint()
    receiver, base_url = started_receiver(endpoint)
    subscription = subscribe(settings, base_url, timeout_ms=TIMEOUT_MS)
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, STAGES, logs) as processes:
            with logs_on_failure(logs):
                stream = SteadyStream(settings, EVENTS, KEYS, PER_SECOND).start(endpoint)
                wait_until(lambda: endpoint.distinct() >= 50, what="deliveries flowing")
                _kill(processes[victim])
                in_flight = stream.published
                assert in_flight < EVENTS, "the stream ended before the kill: it was not mid-stream"
                processes[victim] = start_stage(settings, victim, logs)  # as the supervisor would
                stream.join()
                counted = _all_delivered(settings, endpoint, subscription.id)
                exited = {name: code for name, process in processes.items() if (code := process.poll()) is not None}
    finally:
        receiver.stop()
    assert exited == {}
    duplicates = assert_delivered_in_order(endpoint.successes, EVENTS, duplicates_below_seq=in_flight)
    if victim == "pipeline.results":
        assert duplicates == []  # the deliveries never stopped: only their records waited in Kafka
    assert EVENTS <= counted <= len(endpoint.successes)


@pytest.mark.integration
def test_the_stages_wait_out_a_broker_outage_and_carry_on(tmp_path: Path) -> None:
    endpoint = SlowEndpoint()
    receiver, base_url = started_receiver(endpoint)
    logs = tmp_path / "logs"
    with own_broker(tmp_path / "broker", kafka_heap="512m") as broker:
        settings = next(fresh_settings(broker.bootstrap, tmp_path))
        subscription = subscribe(settings, base_url, timeout_ms=10_000)
        try:
            with running_stages(settings, STAGES, logs) as processes:
                with logs_on_failure(logs):
                    # Events before, during and after the outage: the SDK holds them meanwhile.
                    events = int((OUTAGE_S + 10) * 10)
                    stream = SteadyStream(settings, events, KEYS, per_second=10).start(endpoint)
                    wait_until(lambda: endpoint.distinct() >= 20, what="deliveries flowing")
                    broker.stop()
                    in_flight = stream.published
                    _assert_running_for(processes, OUTAGE_S)
                    endpoint.slow = False  # the backlog of the outage drains at full speed
                    broker.start()
                    stream.join()
                    counted = _all_delivered(settings, endpoint, subscription.id, events)
                    exited = {name: code for name, p in processes.items() if (code := p.poll()) is not None}
        finally:
            receiver.stop()
    assert exited == {}
    assert_delivered_in_order(endpoint.successes, events, duplicates_below_seq=in_flight)
    assert events <= counted <= len(endpoint.successes)
    # Had it records unacknowledged when the broker went (a delivery under way), it said so once,
    # and once that it carried on; with none, it had nothing to wait for.
    said = log_of(logs, "pipeline.dispatcher")
    waited = said.count("waiting for Kafka to acknowledge")
    assert waited <= 1 and ("carrying on" in said) == (waited == 1)


def _all_delivered(settings: Settings, endpoint: RecordingEndpoint, subscription_id: str, events: int = EVENTS) -> int:
    """Waits for the receiver to get every event and ClickHouse to count a success for each; the
    successes ClickHouse counts (its whole row is clickhouse_stats)."""
    wait_until(lambda: endpoint.distinct() >= events, timeout_s=60, what="every event delivered")
    return wait_until(lambda: (counted := clickhouse_stats(settings, subscription_id)["delivered"]) >= events
                      and counted, timeout_s=60, what="ClickHouse to count every event")


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def _assert_running_for(processes: dict[str, subprocess.Popen[bytes]], seconds: float) -> None:
    """The trouble lasts this long, whatever the stages do; any of them exiting meanwhile fails at once."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        exited = {name: code for name, process in processes.items() if (code := process.poll()) is not None}
        assert exited == {}, f"stages exited while the broker was away: {exited}"
        time.sleep(0.5)


def _first_seen(successes: list[Delivered]) -> dict[str, float]:
    first: dict[str, float] = {}
    for delivered in successes:
        first.setdefault(delivered.event_id, delivered.at)
    return first


def _owning_dispatcher(logs: Path) -> str | None:
    """The dispatcher that fetches the endpoint now, from what each logged last about its partitions."""
    owners = []
    for name in ("pipeline.dispatcher", "pipeline.dispatcher#2"):
        counts = re.findall(r"\((\d+) (?:in all|left)\)", log_of(logs, name))
        if counts and counts[-1] != "0":
            owners.append(name)
    return owners[0] if len(owners) == 1 else None


def _publish_and_kill(settings: Settings, endpoint: RecordingEndpoint, victim: subprocess.Popen[bytes]) -> tuple[float, int]:
    """When the victim died, and how many events were published by then."""
    with EventPublisher(settings) as publisher:
        for seq in range(EVENTS):
            publisher.publish_fields(type=EVENT, ordering_key=f"key-{seq % KEYS}",
                                     data=json.dumps({"seq": seq}).encode())
            if seq == EVENTS // 3:
                publisher.flush()
                # Mid-stream: once deliveries are flowing, the dispatcher that owns the endpoint dies without a goodbye.
                wait_until(lambda: len(endpoint.successes) >= 50, what="deliveries flowing")
                victim.send_signal(signal.SIGKILL)
                killed_at, published = time.time(), seq + 1
    return killed_at, published


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
