"""A dead-lettered delivery leaves a results record per event beside its dead letters, and is
not counted as an HTTP attempt: outcome dead_lettered, no status, no latency."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.codec import codec
from pipeline.dispatcher.deliverer import Deliverer, DeliveryPolicy
from pipeline.dispatcher.http import DeliveryRefused, HttpResponse
from pipeline.dispatcher.retry import RetrySchedule
from pipeline.models import DeliveryTask, Event, utcnow
from pipeline.subscriptions.model import Subscription


@dataclass
class Record:
    value: bytes
    offset: int = 0
    key: bytes | None = b"k"
    topic: str = "endpoint.sub"
    partition: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Outbox:
    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []
        self.intents: list[dict[str, Any]] = []
        self.dead_letters: list[tuple[bytes, str]] = []

    async def announce(self, intents: list[dict[str, Any]]) -> None:
        for intent in intents:
            codec("delivery_attempt").encode(intent)
        self.intents.extend(intents)

    def attempt(self, record: dict[str, Any]) -> None:
        codec("delivery_attempt").encode(record)  # what the real outbox writes must fit the schema
        self.attempts.append(record)

    def dead_letter(self, record: Record, reason: str) -> None:
        self.dead_letters.append((record.value, reason))

    def defer(self, record: Record, attempt: int, delay_s: float) -> bool:
        return False  # as for a task too large to carry a delay topic's headers


class Table:
    def __init__(self, subscription: Subscription):
        self.subscription = subscription

    def get(self, subscription_id: str) -> Subscription | None:
        return self.subscription if subscription_id == self.subscription.id else None


class Transport:
    def __init__(self, status: int = 500, refuse: bool = False, outbox: Outbox | None = None):
        self.status, self.refuse, self.sent = status, refuse, 0
        self.intents_when_sent: list[int] = []  # how many intents were announced as each request went out
        self.outbox = outbox

    async def send(self, *args: Any, **kwargs: Any) -> HttpResponse:
        self.sent += 1
        self.intents_when_sent.append(len(self.outbox.intents) if self.outbox else 0)
        if self.refuse:
            raise DeliveryRefused("127.0.0.1 is not allowed")
        return HttpResponse(self.status, {}, b"")


def deliverer(transport: Transport, max_request_bytes: int = 1 << 20, **fields: Any) -> tuple[Deliverer, Outbox, Subscription]:
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"], **fields)
    outbox = Outbox()
    policy = DeliveryPolicy(default_schedule=RetrySchedule(delays_s=(0.0, 0.0, 0.0), jitter=0),
                            max_request_bytes=max_request_bytes)
    return Deliverer(table=Table(subscription), transport=transport, outbox=outbox, policy=policy), outbox, subscription  # type: ignore[arg-type]


def task(subscription: Subscription, n: int, data: bytes | None = None) -> Record:
    event = Event(type="user.created", data=data or f'{{"n": {n}}}'.encode())
    return Record(DeliveryTask(subscription_id=subscription.id, routed_at=utcnow(), event=event).to_avro(), offset=n)


async def test_a_spent_schedule_records_one_dead_lettered_row_after_its_attempts() -> None:
    work, outbox, subscription = deliverer(Transport(500))
    record = task(subscription, 0)
    await work.deliver([record])
    outcomes = [(r["outcome"], r["attempt"]) for r in outbox.attempts]
    assert outcomes == [("http_error", 1), ("http_error", 2), ("http_error", 3), ("dead_lettered", 3)]
    parked = outbox.attempts[-1]
    assert parked["status_code"] is None and parked["latency_ms"] == 0 and parked["request_bytes"] == 0
    assert parked["error"].startswith("retry schedule spent after 3 attempts")
    assert parked["event_id"] == DeliveryTask.from_avro(record.value).event.id
    assert outbox.dead_letters == [(record.value, parked["error"])]


async def test_every_request_is_announced_first_and_its_outcomes_close_its_intents_one_per_event() -> None:
    transport = Transport(500)
    work, outbox, subscription = deliverer(transport, batch_max_events=2)
    transport.outbox = outbox
    await work.deliver([task(subscription, 0), task(subscription, 1)])
    assert transport.intents_when_sent == [2, 4, 6]  # a request only after both its events' intents
    assert [(i["intent"], i["outcome"], i["attempt"]) for i in outbox.intents] == (
        [("open", "unknown", 1)] * 2 + [("open", "unknown", 2)] * 2 + [("open", "unknown", 3)] * 2)
    assert all(i["timeout_ms"] == subscription.timeout_ms and i["request_bytes"] > 0 for i in outbox.intents)
    closing = [r for r in outbox.attempts if r["outcome"] != "dead_lettered"]
    assert [r["attempt_id"] for r in closing] == [i["attempt_id"] for i in outbox.intents]
    assert len({i["attempt_id"] for i in outbox.intents}) == 6
    assert all(r["intent"] == "close" and r["outcome"] == "http_error" for r in closing)
    assert [r.get("intent", "") for r in outbox.attempts if r["outcome"] == "dead_lettered"] == ["", ""]


async def test_a_request_that_cannot_be_built_records_the_current_attempt_for_each_event() -> None:
    transport = Transport(204)
    work, outbox, subscription = deliverer(transport, max_request_bytes=10, batch_max_events=2)
    await work.deliver([task(subscription, 0), task(subscription, 1)])
    assert transport.sent == 0 and outbox.intents == []
    assert [(r["outcome"], r["attempt"]) for r in outbox.attempts] == [("dead_lettered", 1)] * 2
    assert len({r["event_id"] for r in outbox.attempts}) == 2
    assert all(r["error"].startswith("request could not be built") for r in outbox.attempts)
    assert len(outbox.dead_letters) == 2


async def test_a_refused_delivery_is_recorded_as_refused_then_dead_lettered() -> None:
    work, outbox, subscription = deliverer(Transport(refuse=True))
    await work.deliver([task(subscription, 0)])
    assert [r["outcome"] for r in outbox.attempts] == ["refused", "dead_lettered"]
    assert outbox.attempts[1]["error"].startswith("refused: ")


async def test_an_undecodable_task_is_dead_lettered_once_without_a_results_row() -> None:
    work, outbox, subscription = deliverer(Transport(500), batch_max_events=2)
    await work.deliver([Record(b"not a task"), task(subscription, 1)])
    assert [r["outcome"] for r in outbox.attempts] == ["http_error"] * 3 + ["dead_lettered"]
    reasons = [reason.split(":")[0] for _, reason in outbox.dead_letters]
    assert reasons == ["undecodable task", "retry schedule spent after 3 attempts"]  # each record parked once


async def test_a_task_holding_nan_is_dead_lettered_without_a_request() -> None:
    transport = Transport(204)
    work, outbox, subscription = deliverer(transport)
    await work.deliver([task(subscription, 0, data=b'{"amount": NaN}')])
    assert transport.sent == 0
    assert [reason for _, reason in outbox.dead_letters] == ["request could not be built: data.amount: nan is not a "
                                                             "JSON number: NaN, Infinity and numbers beyond a double's "
                                                             "range cannot be sent as JSON"]


async def test_an_unordered_task_that_cannot_go_to_a_delay_topic_is_retried_in_place() -> None:
    transport = Transport(500)
    work, outbox, subscription = deliverer(transport, ordering="none")
    await work.deliver([task(subscription, 0)])
    assert transport.sent == 3  # every attempt of the schedule, then parked: never dropped
    assert outbox.dead_letters[0][1].startswith("retry schedule spent after 3 attempts")
