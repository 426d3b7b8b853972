"""One HTTP attempt of one delivery (an event, or a batch of events), classified, and turned
into results records: one per event, so counts stay per event whether batched or not.

Before the request goes out, its *intents* are announced: the records it would leave if the
dispatcher died during it (outcome `unknown`), acknowledged by Kafka first. Its outcome records
then close them, under the same attempt ids; the results sink stores an intent nobody closed as
an `unknown` attempt (see pipeline.results.open_attempts), so every request an endpoint got is
counted, once, even when the dispatcher was killed mid-request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from pipeline.dispatcher.http import (DeliveryConnectionError, DeliveryRefused, DeliveryTimeout, HttpResponse,
                                      HttpTransport)
from pipeline.dispatcher.request import build_request
from pipeline.models import DeliveryTask
from pipeline.subscriptions.credentials import masked
from pipeline.subscriptions.model import Subscription

RESPONSE_BODY_KEPT = 1024
NO_OUTCOME = "no outcome was recorded: the dispatcher stopped during the request, which may have reached the endpoint"
Announce = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class AttemptOutcome:
    records: list[dict[str, Any]]
    response: HttpResponse | None

    @property
    def succeeded(self) -> bool:
        return self.records[0]["outcome"] == "success"

    @property
    def refused(self) -> bool:
        """The guard would not send it (a private address, plain http): retrying cannot help."""
        return self.records[0]["outcome"] == "refused"

    @property
    def error(self) -> str | None:
        return self.records[0]["error"]


def message_id(tasks: Sequence[DeliveryTask]) -> str:
    """The webhook-id: the event's id, or for a batch one derived from its events, so it is the
    same on every retry of the same delivery."""
    if len(tasks) == 1:
        return tasks[0].event.id
    return f"batch_{tasks[0].event.id}_{len(tasks)}"


async def attempt_delivery(transport: HttpTransport, subscription: Subscription, tasks: Sequence[DeliveryTask],
                           attempt: int, max_body_bytes: int, *, announce: Announce) -> AttemptOutcome:
    """Sends one request; `announce` must return once Kafka holds the intents it is given."""
    started = datetime.now(timezone.utc)
    request = build_request(subscription, [task.event for task in tasks], message_id(tasks),
                            int(started.timestamp()), max_body_bytes)
    # Credentials never reach ClickHouse, nor the subscription's own header values, sealed at rest.
    sent_headers = masked(request.headers, {name.lower() for name in subscription.headers})
    intents = _intents(subscription, tasks, attempt, started, len(request.body), sent_headers)
    await announce(intents)
    clock = time.perf_counter()
    response: HttpResponse | None = None
    error: str | None = None
    try:
        response = await transport.send(request.method, request.url, request.headers, request.body,
                                        subscription.timeout_ms / 1000, ca_bundle=subscription.ca_bundle)
        outcome = "success" if 200 <= response.status < 300 else "http_error"
        error = None if outcome == "success" else f"HTTP {response.status}"
    except DeliveryRefused as exc:
        outcome, error = "refused", str(exc)
    except DeliveryTimeout as exc:
        outcome, error = "timeout", str(exc) or "timed out"
    except DeliveryConnectionError as exc:
        outcome, error = "connection_error", str(exc) or "connection failed"
    latency_ms = (time.perf_counter() - clock) * 1000
    common = _common(subscription, attempt, started, latency_ms, outcome, error, len(request.body), response)
    closing = common | {"intent": "close", "timeout_ms": 0}
    return AttemptOutcome(records=[intent | closing for intent in intents], response=response)


def _intents(subscription: Subscription, tasks: Sequence[DeliveryTask], attempt: int, started: datetime,
             request_bytes: int, sent_headers: dict[str, str]) -> list[dict[str, Any]]:
    """One per event: the attempt as it is stored if its outcome never comes."""
    common = _common(subscription, attempt, started, 0.0, "unknown", NO_OUTCOME, request_bytes, None)
    common |= {"request_headers": sent_headers, "intent": "open", "timeout_ms": subscription.timeout_ms}
    return [_record(task, common) for task in tasks]


def dead_lettered_records(subscription: Subscription, tasks: Sequence[DeliveryTask], attempt: int,
                          reason: str) -> list[dict[str, Any]]:
    """The results records of a delivery parked in the dead-letter topic, one per event: outcome
    `dead_lettered`, the reason as the error, and no HTTP (no status, no latency, no bytes).
    `attempt` is how many attempts were made (or begun) before it was parked."""
    common = _common(subscription, attempt, datetime.now(timezone.utc), 0.0, "dead_lettered", reason, 0, None)
    common["request_headers"] = {}
    return [_record(task, common) for task in tasks]


def _common(subscription: Subscription, attempt: int, started: datetime, latency_ms: float, outcome: str,
            error: str | None, request_bytes: int, response: HttpResponse | None) -> dict[str, Any]:
    return {
        "subscription_id": subscription.id,
        "tenant": subscription.tenant,
        "attempt": attempt,
        "endpoint_host": urlsplit(subscription.url).hostname or "",
        "started_at": started,
        "latency_ms": latency_ms,
        "status_code": response.status if response else None,
        "outcome": outcome,
        "error": error,
        "request_bytes": request_bytes,
        "response_bytes": len(response.body) if response else 0,
        "response_body": response.body[:RESPONSE_BODY_KEPT].decode("utf-8", "replace") if response else "",
    }


def _record(task: DeliveryTask, common: dict[str, Any]) -> dict[str, Any]:
    event = task.event
    return common | {"attempt_id": uuid.uuid4().hex, "event_id": event.id, "event_type": event.type,
                     "event_time": event.time}
