"""POST /v1/events: publish one event or a batch over HTTP, for products without a Kafka client.

Needs a token with the `publish` scope; a tenant token publishes its own tenant's events only. What
the route accepts is in Kafka when it answers, encoded and keyed as the SDK writes it; an event id
or an Idempotency-Key makes a retried publish a no-op for the window (see pipeline.api.idempotency).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from pipeline.tokens import Caller
from pipeline.api.event_intake import EventIntake, answer, submissions
from pipeline.api.idempotency import IdempotencyConflict, IdempotencyLedger, ledger_topic
from pipeline.config import Settings
from pipeline.errors import InvalidInput
from pipeline.kafka.acked import AcknowledgedProducer
from pipeline.kafka.admin import admin_client, core_topics, ensure_topics
from pipeline.producer.async_publisher import AsyncEventPublisher
from pipeline.topics import TopicNames

MAX_BODY_BYTES = 16 * 1024 * 1024
BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
    {"type": "object", "description": "one event envelope"},
    {"type": "array", "items": {"type": "object"}, "description": "up to 1,000 envelopes"}]}}}}}


class BodyTooLarge(InvalidInput):
    pass


ERROR_STATUSES = {IdempotencyConflict: 409, BodyTooLarge: 413}
# A publish fails in this time when Kafka does not take it, rather than the client's waiting minutes.
PUBLISH_TIMEOUT_MS = 30_000
LEDGER_LOAD_TIMEOUT_S = 60.0


class Publishing:
    """What the route runs on, started with the app: a producer thread and the idempotency ledger's reader."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.intake: EventIntake | None = None
        self._producer: AcknowledgedProducer | None = None
        self._follower: asyncio.Task | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self._ensure_topics)
        self._producer = AcknowledgedProducer(self.settings, **{"message.timeout.ms": PUBLISH_TIMEOUT_MS})
        ledger = IdempotencyLedger(self.settings, self._producer)
        self.intake = EventIntake(AsyncEventPublisher(self.settings, self._producer), ledger)
        self._follower = asyncio.create_task(ledger.follower.run(), name="idempotency-ledger")
        await ledger.follower.wait_loaded(LEDGER_LOAD_TIMEOUT_S)

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        if self._producer is not None:
            self._producer.close()  # on the loop: delivery reports settle futures, which belong to it

    def _ensure_topics(self) -> None:
        events = TopicNames.from_settings(self.settings).events
        specs = [spec for spec in core_topics(self.settings) if spec.name == events] + [ledger_topic(self.settings)]
        ensure_topics(admin_client(self.settings.kafka_bootstrap_servers), specs)


def publish_router(publishing: Publishing, publisher: Any, published: Counter | None = None) -> APIRouter:
    """publisher: the API's dependency naming who asks, holding the publish scope; published: counts
    the events written (duplicates left out)."""
    router = APIRouter(tags=["events"])

    @router.post("/v1/events", status_code=202, openapi_extra=BODY_DOC)
    async def publish(request: Request, who: Caller = Depends(publisher),
                      idempotency_key: str | None = Header(None, alias="Idempotency-Key")) -> JSONResponse:
        """Publish one event (a JSON envelope) or a batch (a JSON array of up to 1,000); see the README."""
        body = await json_body(request)
        found = submissions(body, who, idempotency_key, publishing.settings.max_request_bytes)
        if publishing.intake is None:
            raise HTTPException(503, "the API is starting")
        duplicates = await publishing.intake.publish(found)
        if published is not None:
            published.inc(sum(1 for duplicate in duplicates if not duplicate))
        answers = [answer(submission, duplicate) for submission, duplicate in zip(found, duplicates, strict=True)]
        replayed = {"Idempotent-Replayed": "true"} if all(duplicates) else {}
        return JSONResponse(answers[0] if not isinstance(body, list) else {"data": answers}, status_code=202,
                            headers=replayed)

    return router


async def json_body(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON, read no further than the limit."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge("body", f"is larger than {limit // (1024 * 1024)} MiB: send fewer events a request")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidInput("body", f"is not JSON: {exc}") from exc
