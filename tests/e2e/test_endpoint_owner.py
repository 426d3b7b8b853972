"""One dispatcher owns an endpoint, whichever of several runs: its rate limit and a Retry-After
hold are the endpoint's, not a process's, and its failure streak outlives a restart.

The endpoint has four partitions (a heavy one), so with two dispatchers a design that shared
its partitions out would split the limit and the hold between them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.producer import EventPublisher
from pipeline.receiver import ReceivedDelivery, Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.snapshot import read_snapshot
from pipeline.subscriptions.writer import SubscriptionWriter
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages

pytestmark = pytest.mark.integration
TWO_DISPATCHERS = ["pipeline.router", "pipeline.dispatcher", "pipeline.dispatcher#2"]


def subscribe(settings: Settings, url: str, **fields: object):  # type: ignore[no-untyped-def]
    return SubscriptionCommands(SubscriptionWriter(settings), lambda _: None).create(
        {"name": "owned", "url": url, "event_types": ["owned.*"], "partitions": 4, **fields})


def publish(settings: Settings, count: int) -> None:
    with EventPublisher(settings) as publisher:
        for n in range(count):  # a key each: they spread over the endpoint's four partitions
            publisher.publish_fields(type="owned.tick", ordering_key=f"key-{n}", data=json.dumps({"n": n}).encode())


def both_dispatchers_own_shards(logs: Path) -> bool:
    return all("shards gained" in (logs / f"{name}.log").read_text(errors="replace")
               for name in ("pipeline.dispatcher", "pipeline.dispatcher#2"))


def test_a_rate_limit_holds_for_the_endpoint_across_two_dispatchers(settings: Settings, tmp_path: Path) -> None:
    receiver = Receiver()
    url = receiver.start()
    subscribe(settings, f"{url}/limited", rate_limit_per_s=5)
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, TWO_DISPATCHERS, logs), logs_on_failure(logs):
            wait_until(lambda: both_dispatchers_own_shards(logs), what="both dispatchers sharing the shards")
            publish(settings, 30)
            arrivals = sorted(d.received_at for d in wait_until(
                lambda: len(receiver.by_path("/limited")) >= 30 and receiver.by_path("/limited"), timeout_s=60,
                what="thirty deliveries"))
    finally:
        receiver.stop()
    # A second's worth at once, then five a second: 25 more take at least five seconds. Shared by
    # two processes, each allowing five a second, they would take half that.
    assert arrivals[-1] - arrivals[0] >= 25 / 5 * 0.9
    assert all(sum(t <= at < t + 1 for at in arrivals) <= 10 for t in arrivals)


def test_a_retry_after_holds_every_partition_of_the_endpoint_across_two_dispatchers(settings: Settings,
                                                                                   tmp_path: Path) -> None:
    told: list[float] = []

    def respond(delivery: ReceivedDelivery) -> tuple[int, dict[str, str]]:
        if not told:
            told.append(time.time())
            return 429, {"retry-after": "3"}
        return 204, {}

    receiver = Receiver(respond=respond)
    url = receiver.start()
    subscribe(settings, f"{url}/held", max_in_flight=1)  # one at a time, so the 429 comes first
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, TWO_DISPATCHERS, logs), logs_on_failure(logs):
            wait_until(lambda: both_dispatchers_own_shards(logs), what="both dispatchers sharing the shards")
            publish(settings, 12)
            requests = wait_until(lambda: len(receiver.by_path("/held")) >= 13 and receiver.by_path("/held"),
                                  timeout_s=60, what="every event delivered after the hold")
    finally:
        receiver.stop()
    after_the_429 = sorted(d.received_at for d in requests)[1:]
    assert after_the_429[0] - told[0] >= 3 * 0.95  # nothing, from any partition, before the hold ended


def test_a_failure_streak_outlives_a_restart_of_the_dispatcher(settings: Settings, tmp_path: Path) -> None:
    """Disabled after 4 s of only failures (and at least 5). The dispatcher is stopped two
    seconds in and kept down past the window: carried over, the streak disables the endpoint at
    its first failure after the restart; started over, it would take five more and four seconds."""
    settings = settings.model_copy(update={"auto_disable_after_s": 4.0, "auto_disable_min_failures": 5,
                                           "retry_schedule_s": (0.0,) + (0.3,) * 100})
    receiver = Receiver(respond=lambda _: 500)
    url = receiver.start()
    subscription = subscribe(settings, f"{url}/failing", partitions=1)
    logs = tmp_path / "logs"
    try:
        with running_stages(settings, ["pipeline.router", "pipeline.dispatcher"], logs) as first, logs_on_failure(logs):
            publish(settings, 1)
            wait_until(lambda: len(receiver.by_path("/failing")) >= 3, what="failures under way")
            started = receiver.by_path("/failing")[0].received_at
            wait_until(lambda: time.time() - started >= 2.0, what="two seconds of failures")
            first["pipeline.dispatcher"].send_signal(signal.SIGTERM)  # commits the streak on its way out
            first["pipeline.dispatcher"].wait(30)
        before_restart = len(receiver.by_path("/failing"))
        wait_until(lambda: time.time() - started >= 4.5, what="the window to pass while it is down")
        assert read_snapshot(settings)[subscription.id].active
        with running_stages(settings, ["pipeline.dispatcher"], tmp_path / "logs-again"), \
                logs_on_failure(logs, tmp_path / "logs-again"):
            wait_until(lambda: not read_snapshot(settings)[subscription.id].active, timeout_s=30,
                       what="the endpoint disabled")
        assert len(receiver.by_path("/failing")) - before_restart <= 2
    finally:
        receiver.stop()
