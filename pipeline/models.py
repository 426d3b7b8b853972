"""Validated records of the pipeline: events, subscriptions and delivery tasks.

Each converts to and from the dict that its Avro schema in schemas/ describes.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Annotated, Any

from fastavro import parse_schema
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline import json_values
from pipeline.codec import Codec, codec, is_single_object
from pipeline.errors import CodecError, InvalidEvent, InvalidInput
from pipeline.kafka.position import Position

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,254}$"


def utcnow() -> datetime:
    return to_millis(datetime.now(timezone.utc))


def to_millis(moment: datetime) -> datetime:
    """Times are kept to the millisecond, as the Avro schemas store them."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


Millis = Annotated[datetime, AfterValidator(to_millis)]


def is_json(content_type: str) -> bool:
    """application/json, with or without parameters such as charset."""
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: new_id("evt"), min_length=1, max_length=255)
    type: str = Field(pattern=NAME_PATTERN)
    source: str = Field("", max_length=255)
    tenant: str = Field("", max_length=255)
    time: Millis = Field(default_factory=utcnow)
    ordering_key: str | None = Field(None, max_length=255)
    data: bytes = b"{}"
    content_type: str = "application/json"

    @field_validator("id", "source", "tenant", "ordering_key", "content_type")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and not _is_text(value):
            raise ValueError("holds a lone surrogate (\\ud800 to \\udfff), which is not text")
        return value

    @property
    def partition_key(self) -> bytes:
        """Events with one ordering key stay in one partition, so they stay in order."""
        return (self.ordering_key or self.id).encode()

    def to_record(self) -> dict[str, Any]:
        return self.model_dump()

    def to_avro(self) -> bytes:
        return codec("event").encode(self.to_record())

    @classmethod
    def from_json_envelope(cls, envelope: dict[str, Any]) -> Event:
        """A JSON envelope carries data as a JSON value rather than bytes, checked first (as
        decode_event and event_from_envelope do)."""
        fields = dict(envelope)
        if "data" in fields:
            fields["data"] = json_values.dumps(fields["data"])
        return cls(**fields)


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def decode_event(payload: bytes | None, position: Position | None = None) -> Event:
    """An event from the events topic: Avro single-object, or a JSON envelope. A JSON envelope
    without an id or a time takes them from where it sits in Kafka (see _from_checked_envelope)."""
    if not payload:
        raise InvalidEvent("value", "empty message")
    if is_single_object(payload):
        try:
            event = Event(**codec("event").decode(payload))
        except ValidationError as exc:
            raise invalid_input(exc, InvalidEvent) from exc
        except CodecError as exc:
            raise InvalidEvent("value", f"not a valid Avro single-object event: {exc}") from exc
        if is_json(event.content_type):
            try:
                json_values.loads(event.data, ("data",), InvalidEvent)
            except ValueError as exc:
                raise InvalidEvent("data", f"not valid JSON: {exc}") from exc
        return event
    try:
        envelope = json_values.loads(payload, (), InvalidEvent)
    except ValueError as exc:
        raise InvalidEvent("value", f"neither a valid Avro single-object event nor a JSON envelope: {exc}") from exc
    if not isinstance(envelope, dict):
        raise InvalidEvent("value", "a JSON envelope must be an object")
    return _from_checked_envelope(envelope, InvalidEvent, position)


def event_from_envelope(envelope: dict[str, Any], kind: type[InvalidInput] = InvalidInput) -> Event:
    json_values.check(envelope, (), kind)
    return _from_checked_envelope(envelope, kind, None)


def _from_checked_envelope(envelope: dict[str, Any], kind: type[InvalidInput], position: Position | None) -> Event:
    """Without an id or a time, an envelope read from Kafka takes an id derived from its position
    and its Kafka timestamp as its time, so reading it again (a router routing it again after a
    crash) gives the same event, and receivers can deduplicate by its id."""
    if position is not None:
        defaults: dict[str, Any] = {}
        if "id" not in envelope:
            defaults["id"] = position.derived_id("evt")
        if "time" not in envelope and position.time is not None:
            defaults["time"] = position.time
        envelope = defaults | envelope if defaults else envelope
    try:
        return Event.from_json_envelope(envelope)
    except ValidationError as exc:
        raise invalid_input(exc, kind) from exc


def invalid_input(exc: ValidationError, kind: type[InvalidInput] = InvalidInput) -> InvalidInput:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "value"
    return kind(field, first["msg"])


def validated(model: type[BaseModel], **fields: Any) -> Any:
    """Builds a model, turning pydantic's error into InvalidInput naming the first bad field."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise invalid_input(exc) from exc


def encode_task(subscription_id: str, routed_at: datetime, event_record: dict[str, Any]) -> bytes:
    """A delivery task's bytes from an already validated event's record, not validated again."""
    record = {"subscription_id": subscription_id, "routed_at": routed_at, "event": event_record}
    return codec("delivery_task").encode(record)


_TASK_HEAD = Codec(parse_schema({
    "type": "record", "name": "TaskHead", "namespace": "webhooks.pipeline.router",
    "fields": [{"name": "subscription_id", "type": "string"},
               {"name": "routed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}))


def encode_tasks(subscription_ids: Iterable[str], routed_at: datetime, event_record: dict[str, Any]) -> list[bytes]:
    """The delivery tasks of one event routed to several subscriptions, the same bytes as
    encode_task's. A task's body is its first two fields' bodies, then the event's (the
    schema's field order), so the event, most of every task, is encoded once and shared."""
    event_body = codec("event").encode_body(event_record)
    header = codec("delivery_task").header
    return [header + _TASK_HEAD.encode_body({"subscription_id": subscription_id, "routed_at": routed_at}) + event_body
            for subscription_id in subscription_ids]


class DeliveryTask(BaseModel):
    model_config = ConfigDict(frozen=True)

    subscription_id: str
    routed_at: Millis
    event: Event

    def to_avro(self) -> bytes:
        return encode_task(self.subscription_id, self.routed_at, self.event.to_record())

    @classmethod
    def from_avro(cls, payload: bytes) -> DeliveryTask:
        """Tasks are written by the router from validated events and their schema types every
        field, so they are not validated again on the dispatcher's hot path."""
        record = codec("delivery_task").decode(payload)
        return cls.model_construct(subscription_id=record["subscription_id"], routed_at=record["routed_at"],
                                   event=Event.model_construct(**record["event"]))
