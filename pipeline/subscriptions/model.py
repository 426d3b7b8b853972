"""The subscription: everything a webhook endpoint's settings screen offers, validated.

Each refusal names the field. Filters, templates and headers are checked by the same code
that later applies them, so anything accepted here can be applied.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from pipeline.errors import InvalidInput
from pipeline.models import Millis, new_id, new_secret, utcnow, validated
from pipeline.subscriptions.credentials import mask
from pipeline.subscriptions.urls import url_problem

TYPE_FILTER_PATTERN = r"^(\*|[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*(\.\*)?)$"
SUBSCRIPTION_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
SECRET_FIELDS = {"secret", "previous_secrets"}
HIDDEN_FIELDS = SECRET_FIELDS | {"based_on"}
MAX_PARTITIONS = 64  # a heavy endpoint's topic; one dispatcher owns them all, so its limits hold whole


class EndpointAuth(BaseModel):
    """How the endpoint authenticates us: none, HTTP basic, or a bearer token."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["none", "basic", "bearer"] = "none"
    username: str | None = None
    password: str | None = None
    token: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> EndpointAuth:
        if self.type == "basic" and (not self.username or self.password is None):
            raise ValueError("basic auth needs a username and a password")
        if self.type == "basic" and ":" in self.username:
            raise ValueError("a basic auth username cannot contain ':'")
        if self.type == "bearer" and not self.token:
            raise ValueError("bearer auth needs a token")
        if any(ch in (value or "") for value in (self.username, self.password, self.token) for ch in "\r\n\0"):
            raise ValueError("credentials cannot contain CR, LF or NUL")
        return self


class PreviousSecret(BaseModel):
    secret: str
    expires_at: Millis


class SubscriptionFields(BaseModel):
    """What a user may set on a subscription; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=2000)
    tenant: str = Field("", max_length=255)
    url: str = Field(max_length=2048)
    method: Literal["GET", "POST", "PUT"] = "POST"
    event_types: list[str] = Field(min_length=1, max_length=100)
    active: bool = True
    sources: list[str] = Field(default_factory=list, max_length=10_000)
    filter: dict[str, Any] | None = None
    headers: dict[str, str | None] = Field(default_factory=dict, max_length=50)
    auth: EndpointAuth = Field(default_factory=EndpointAuth)
    body_format: Literal["json", "form", "raw", "json-rpc"] = "json"
    rpc_method: str | None = Field(None, min_length=1, max_length=255, validate_default=True)
    template: Any = None
    batch_max_events: int = Field(1, ge=1, le=1000)
    batch_max_wait_ms: int = Field(0, ge=0, le=60_000)
    signing: Literal["standard", "hmac-sha256"] = "standard"
    secret: str | None = None
    ca_bundle: str | None = Field(None, max_length=100_000)
    timeout_ms: int = Field(15_000, ge=100, le=120_000)
    retry_schedule_s: list[float] | None = Field(None, min_length=1, max_length=30)
    rate_limit_per_s: float | None = Field(None, gt=0, le=100_000)
    max_in_flight: int | None = Field(None, ge=1, le=1000)
    ordering: Literal["strict", "per_key", "none"] = "per_key"
    when_retries_exhausted: Literal["dead_letter", "block"] = "dead_letter"
    partitions: int | None = Field(None, ge=1, le=MAX_PARTITIONS)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("event_types")
    @classmethod
    def _event_types(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(TYPE_FILTER_PATTERN, item):
                raise ValueError(f"{item!r} is not an event type or a wildcard like user.* or *")
        return value

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        if any(not source or len(source) > 255 for source in value):
            raise ValueError("each source must be 1 to 255 characters")
        return value

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from pipeline.router.content_filter import compile_filter

            compile_filter(value)
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        from pipeline.dispatcher.template import compile_template

        compile_template(value)
        named_values = isinstance(value, list) or (
            isinstance(value, dict) and not any(key.startswith("$") for key in value))
        if (info.data.get("method") == "GET" or info.data.get("body_format") == "form") and not named_values:
            raise ValueError("GET requests and form bodies need a template that is an object or an array")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        if not value:
            return value
        from pipeline.dispatcher.body_formats import validate_header

        for name, header_value in value.items():
            validate_header(name, header_value or "")
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str | None) -> str | None:
        if value is not None:
            from pipeline.dispatcher.tls import CaContexts

            CaContexts().get(value)  # an unusable bundle is refused now, not at every delivery
        return value

    @field_validator("retry_schedule_s")
    @classmethod
    def _schedule(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0 <= delay <= 172_800 for delay in value):
            raise ValueError("each delay must be between 0 and 172800 seconds")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)

    @field_validator("rpc_method")
    @classmethod
    def _rpc(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("body_format") == "json-rpc" and not value:
            raise ValueError("is required when body_format is json-rpc")
        return value


def check_secret(value: str) -> str:
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except ValueError as exc:
        raise ValueError("must be whsec_ followed by base64") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError("must hold 24 to 64 bytes of key")
    return value


class Subscription(SubscriptionFields):
    """Inactive is either paused by a user (nothing is routed to it) or disabled by the pipeline
    (`disabled_reason` set: its events keep queueing in its topic and drain once it is enabled).

    Every change makes a successor: the next version, based on this one. Readers of the topic
    apply a record only on top of the version it was based on (pipeline.subscriptions.records),
    so of two changes made from the same version, the one written first wins everywhere.
    """

    id: str = Field(default_factory=lambda: new_id("sub"), pattern=SUBSCRIPTION_ID_PATTERN)
    secret: str = Field(default_factory=new_secret)
    previous_secrets: list[PreviousSecret] = Field(default_factory=list)
    disabled_reason: str | None = None
    disabled_at: Millis | None = None
    created_at: Millis = Field(default_factory=utcnow)
    updated_at: Millis = Field(default_factory=utcnow)
    version: int = Field(1, ge=0)  # 0: read from a record written before versions
    based_on: int | None = Field(0, ge=0)  # 0: made when none existed; None: applies whatever is there

    @property
    def paused(self) -> bool:
        """Inactive by a user's choice: events for it are dropped until it is resumed."""
        return not self.active and self.disabled_reason is None

    def patched(self, changes: dict[str, Any]) -> Subscription:
        """A partial update: the fields given change, the rest (secrets included) stay.

        Secrets change only by rotation, so the old one keeps signing for the overlap.
        """
        rotated_only = sorted(SECRET_FIELDS & set(changes))
        if rotated_only:
            raise InvalidInput(rotated_only[0], "cannot be changed by an update; use rotate-secret, which "
                                                "keeps the old secret signing beside the new one for the overlap")
        unknown = sorted(set(changes) - set(SubscriptionFields.model_fields))
        if unknown:
            raise InvalidInput(unknown[0], "is not a subscription field")
        if changes.get("partitions", self.partitions) != self.partitions:
            raise InvalidInput("partitions", "is set when the subscription is created: more partitions later would "
                                             "move ordering keys to other partitions and break their order")
        if "active" in changes:  # resumed or paused by a user: no longer disabled by the pipeline
            changes = changes | {"disabled_reason": None, "disabled_at": None}
        return self.successor(changes)

    def disabled(self, reason: str) -> Subscription:
        """Turned off by the pipeline: nothing is delivered, but events still queue in its topic."""
        return self.successor({"active": False, "disabled_reason": reason, "disabled_at": utcnow()})

    def rotated(self, overlap: timedelta, new: str | None = None) -> Subscription:
        """A new secret signs at once; the old one keeps signing beside it until the overlap ends."""
        now = utcnow()
        kept = [old for old in self.previous_secrets if old.expires_at > now]
        previous = [*kept, PreviousSecret(secret=self.secret, expires_at=now + overlap)]
        return self.successor({"secret": new or new_secret(), "previous_secrets": previous})

    def successor(self, changes: dict[str, Any]) -> Subscription:
        """This subscription changed: the next version, based on this one."""
        return validated(Subscription, **(self.model_dump() | changes | {
            "updated_at": utcnow(), "version": self.version + 1, "based_on": self.version}))

    def restated(self) -> Subscription:
        """This very version again, as a record every reader holding it accepts."""
        return self.model_copy(update={"based_on": self.version})

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        moment = now or utcnow()
        return [self.secret, *(old.secret for old in self.previous_secrets if old.expires_at > moment)]

    def public_view(self) -> dict[str, Any]:
        """What lists, logs and ClickHouse may show: never a secret or a credential."""
        view = self.model_dump(mode="json", exclude=HIDDEN_FIELDS)
        view["auth"] = {"type": self.auth.type, "username": self.auth.username}
        view["headers"] = {name: None if value is None else mask(name, value) for name, value in self.headers.items()}
        return view
