"""What the chaos tests share: a steady stream of events with a sequence number per ordering key,
an endpoint that records what it was sent, and the checks every disturbance must pass."""

from __future__ import annotations

import json
import threading
from collections import Counter
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import httpx

from pipeline.config import Settings
from pipeline.producer import EventPublisher
from pipeline.receiver import ReceivedDelivery, Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.writer import SubscriptionWriter
from tests.conftest import results_auth
from tests.polling import wait_until

EVENT, WARM_UP = "chaos.event", "chaos.warm-up"


@dataclass(frozen=True)
class Delivered:
    event_id: str
    webhook_id: str
    key: str
    seq: int
    at: float


class RecordingEndpoint:
    """Answers 204 and records every delivery; a subclass may answer otherwise first (`trouble`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.successes: list[Delivered] = []
        self.requests = 0
        self.received: Counter[str] = Counter()  # requests per webhook-id (the event's id, without batches)
        self.warmed_up = threading.Event()

    async def trouble(self, request_number: int) -> int | None:
        """A status to answer instead of success, or None to accept the delivery."""
        return None

    async def respond(self, delivery: ReceivedDelivery) -> int:
        with self.lock:
            self.requests += 1
            self.received[delivery.headers.get("webhook-id", "")] += 1
            number = self.requests
        if (status := await self.trouble(number)) is not None:
            return status
        body = json.loads(delivery.body)
        if body["type"] == WARM_UP:
            self.warmed_up.set()
            return 204
        with self.lock:
            self.successes.append(Delivered(body["id"], delivery.headers.get("webhook-id", ""), body["ordering_key"],
                                            body["data"]["seq"], time.time()))
        return 204

    def distinct(self) -> int:
        with self.lock:
            return len({d.event_id for d in self.successes})


def subscribe(settings: Settings, base_url: str, *, warm_up: bool = True, **fields: object) -> Subscription:
    """The subscription under test, to the chaos events; the warm-up event (SteadyStream.start)
    has one of its own, so that ClickHouse's counts for this one are of the stream alone."""
    commands = SubscriptionCommands(SubscriptionWriter(settings), lambda _: None)
    if warm_up:
        commands.create({"name": "warm-up", "url": f"{base_url}/warm-up", "event_types": [WARM_UP]})
    return commands.create({"name": "chaos", "url": f"{base_url}/chaos", "event_types": [EVENT], **fields})


class SteadyStream:
    """Publishes `events` events at `per_second`, numbered in order, over `keys` ordering keys,
    from a thread of its own; `published` says how many so far (the SDK queues them while the
    broker is away)."""

    def __init__(self, settings: Settings, events: int, keys: int, per_second: float):
        self.settings, self.events, self.keys, self.per_second = settings, events, keys, per_second
        self.published = 0
        self._thread = threading.Thread(target=self._publish, name="steady-stream", daemon=True)

    def start(self, endpoint: RecordingEndpoint) -> SteadyStream:
        """Once the pipeline delivers (an event of its own, outside the count), so that the stream
        flows through running stages and a disturbance strikes it mid-stream."""
        with EventPublisher(self.settings) as publisher:
            publisher.publish_fields(type=WARM_UP, ordering_key="warm-up", data=b"{}")
        wait_until(endpoint.warmed_up.is_set, timeout_s=60, what="the pipeline delivering")
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join()

    def _publish(self) -> None:
        started = time.monotonic()
        with EventPublisher(self.settings) as publisher:
            for seq in range(self.events):
                time.sleep(max(0.0, started + seq / self.per_second - time.monotonic()))
                publisher.publish_fields(type=EVENT, ordering_key=f"key-{seq % self.keys}",
                                         data=json.dumps({"seq": seq}).encode())
                self.published = seq + 1


def assert_delivered_in_order(successes: list[Delivered], events: int, *, duplicates_below_seq: int) -> list[Delivered]:
    """Every event delivered; per key, first deliveries in publishing order; a duplicate only of an
    event published before seq `duplicates_below_seq` (in flight when the trouble struck), and
    carrying the first copy's webhook-id. The duplicates, for further checks."""
    first: dict[str, Delivered] = {}
    sequences: dict[str, list[int]] = defaultdict(list)
    duplicates = []
    for delivered in successes:
        if delivered.event_id in first:
            duplicates.append(delivered)
            continue
        first[delivered.event_id] = delivered
        sequences[delivered.key].append(delivered.seq)
    assert len(first) == events, f"{events - len(first)} events not delivered"
    for key, seen in sequences.items():
        assert seen == sorted(seen), f"order broken for {key}: {seen}"
    assert all(d.seq < duplicates_below_seq for d in duplicates), [d.seq for d in duplicates]
    assert all(d.webhook_id == first[d.event_id].webhook_id == d.event_id for d in duplicates)
    return duplicates


def clickhouse_stats(settings: Settings, subscription_id: str) -> dict[str, Any]:
    """The subscription's row of `/v1/stats` (`delivered`: successful attempts, duplicates
    included; `attempts`: every HTTP attempt), or an empty one before any is stored."""
    response = httpx.get(f"http://127.0.0.1:{settings.results_port}/v1/stats",
                         params={"subscription_id": subscription_id}, timeout=10, headers=results_auth(settings))
    rows = response.json()["subscriptions"]
    return rows[0] if rows else {"delivered": 0, "attempts": 0}


def log_of(logs: Path, stage: str) -> str:
    return (logs / f"{stage}.log").read_text(errors="replace")


def started_receiver(endpoint: RecordingEndpoint) -> tuple[Receiver, str]:
    receiver = Receiver(respond=endpoint.respond)
    return receiver, receiver.start()

