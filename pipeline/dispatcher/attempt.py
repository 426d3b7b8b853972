"""One HTTP attempt of one delivery task, classified and turned into a results record."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from pipeline.dispatcher.http import DeliveryConnectionError, DeliveryTimeout, HttpResponse, HttpTransport
from pipeline.dispatcher.request import envelope_body, request_headers
from pipeline.models import DeliveryTask
from pipeline.subscriptions.model import Subscription

RESPONSE_BODY_KEPT = 1024


@dataclass(frozen=True, kw_only=True)
class AttemptOutcome:
    record: dict[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.record["outcome"] == "success"


async def attempt_delivery(
    transport: HttpTransport, subscription: Subscription, task: DeliveryTask, attempt: int, timeout_s: float
) -> AttemptOutcome:
    body = envelope_body(task.event)
    started = datetime.now(timezone.utc)
    headers = request_headers(subscription, task.event, body, int(started.timestamp()))
    clock = time.perf_counter()
    response: HttpResponse | None = None
    error: str | None = None
    try:
        response = await transport.send("POST", subscription.url, headers, body, timeout_s)
        outcome = "success" if 200 <= response.status < 300 else "http_error"
    except DeliveryTimeout as exc:
        outcome, error = "timeout", str(exc) or "timed out"
    except DeliveryConnectionError as exc:
        outcome, error = "connection_error", str(exc) or "connection failed"
    latency_ms = (time.perf_counter() - clock) * 1000
    return AttemptOutcome(record=_record(subscription, task, attempt, started, latency_ms, outcome,
                                         error, len(body), response))


def _record(
    subscription: Subscription, task: DeliveryTask, attempt: int, started: datetime, latency_ms: float,
    outcome: str, error: str | None, request_bytes: int, response: HttpResponse | None,
) -> dict[str, Any]:
    event = task.event
    return {
        "attempt_id": uuid.uuid4().hex,
        "event_id": event.id,
        "event_type": event.type,
        "event_time": event.time,
        "subscription_id": subscription.id,
        "tenant": subscription.tenant,
        "attempt": attempt,
        "endpoint_host": urlsplit(subscription.url).hostname or "",
        "started_at": started,
        "latency_ms": latency_ms,
        "status_code": response.status if response else None,
        "outcome": outcome,
        "error": error if response is None else (None if outcome == "success" else f"HTTP {response.status}"),
        "request_bytes": request_bytes,
        "response_bytes": len(response.body) if response else 0,
        "response_body": response.body[:RESPONSE_BODY_KEPT].decode("utf-8", "replace") if response else "",
    }
