"""POST /v1/events bodies into events: the SDK's validation, the caller's tenant, idempotency keys.

A body is one JSON envelope (as `pipeline publish --file` reads them: `data` is a JSON value) or a
JSON array of them. The whole request is checked before anything is written: one bad event refuses
the request, naming the event's place and field (`[3].type`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.tokens import Caller
from pipeline.api.idempotency import IdempotencyLedger, Keyed, derived_event_id, fingerprint, ledger_key
from pipeline.errors import InvalidInput
from pipeline.models import Event, event_from_envelope
from pipeline.producer.async_publisher import AsyncEventPublisher

MAX_BATCH = 1000
RESERVED_TYPE_PREFIX = "pipeline."  # the pipeline's own operator events (pipeline.subscription.disabled)
IDEMPOTENCY_KEY = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII without spaces, as Stripe's keys


@dataclass(frozen=True)
class Submission:
    event: Event
    keyed: Keyed | None  # None: no id given and no Idempotency-Key, so nothing to deduplicate


def submissions(body: Any, who: Caller, idempotency_key: str | None, max_data_bytes: int) -> list[Submission]:
    """Every event of the body, validated; raises InvalidInput naming the first bad field."""
    if idempotency_key is not None and not KEY_PATTERN.match(idempotency_key):
        raise InvalidInput(IDEMPOTENCY_KEY, "must be 1 to 255 printable ASCII characters without spaces")
    batch = isinstance(body, list)
    envelopes = body if batch else [body]
    if batch and not 1 <= len(envelopes) <= MAX_BATCH:
        raise InvalidInput("body", f"a batch holds 1 to {MAX_BATCH} events, not {len(envelopes)}")
    found = [_submission(envelope, who, idempotency_key, position if batch else None, max_data_bytes)
             for position, envelope in enumerate(envelopes)]
    _refuse_repeated_ids(found)
    return found


def _submission(envelope: Any, who: Caller, idempotency_key: str | None, position: int | None,
                max_data_bytes: int) -> Submission:
    where = "" if position is None else f"[{position}]."
    if not isinstance(envelope, dict):
        raise InvalidInput(where.rstrip(".") or "body", "must be a JSON object: an event envelope")
    fields = dict(envelope)
    if not who.is_admin:
        if fields.setdefault("tenant", who.tenant) != who.tenant:
            raise InvalidInput(f"{where}tenant", "a tenant token publishes its own tenant's events only")
        if str(fields.get("type", "")).startswith(RESERVED_TYPE_PREFIX):
            raise InvalidInput(f"{where}type", f"{RESERVED_TYPE_PREFIX}* types are the pipeline's own; "
                               "only an admin token publishes them")
    key_field = f"{where}id" if "id" in fields else IDEMPOTENCY_KEY if idempotency_key else None
    if "id" not in fields and idempotency_key:
        fields["id"] = derived_event_id(str(fields.get("tenant", "")), idempotency_key, position)
    try:
        event = event_from_envelope(fields)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}{exc.field}", exc.problem) from exc
    if len(event.data) > max_data_bytes:
        raise InvalidInput(f"{where}data", f"is {len(event.data):,} bytes; a delivery carries at most "
                           f"{max_data_bytes:,} (PIPELINE_MAX_REQUEST_BYTES)")
    keyed = Keyed(ledger_key(event.tenant, event.id), fingerprint(envelope), key_field) if key_field else None
    return Submission(event, keyed)


def _refuse_repeated_ids(found: Sequence[Submission]) -> None:
    first_at: dict[tuple[str, str], int] = {}
    for position, submission in enumerate(found):
        key = (submission.event.tenant, submission.event.id)
        if key in first_at:
            raise InvalidInput(f"[{position}].id", f"repeats the id of [{first_at[key]}]: one event, one id")
        first_at[key] = position


class EventIntake:
    """Publishes submissions once: a keyed event already published within the window is not sent again."""

    def __init__(self, publisher: AsyncEventPublisher, ledger: IdempotencyLedger):
        self.publisher = publisher
        self.ledger = ledger

    async def publish(self, found: Sequence[Submission]) -> list[bool]:
        """Whether each submission was a duplicate (and so not published again)."""
        keyed = [submission.keyed for submission in found if submission.keyed]
        async with self.ledger.holding([k.key for k in keyed]):
            duplicates = [bool(s.keyed) and self.ledger.published(s.keyed) for s in found]
            fresh = [s for s, duplicate in zip(found, duplicates, strict=True) if not duplicate]
            await self.publisher.publish([s.event for s in fresh])
            await self.ledger.record([s.keyed for s in fresh if s.keyed])
        return duplicates


def answer(submission: Submission, duplicate: bool) -> dict[str, Any]:
    event = submission.event
    return {"id": event.id, "type": event.type, "tenant": event.tenant, "ordering_key": event.ordering_key,
            "duplicate": duplicate}
