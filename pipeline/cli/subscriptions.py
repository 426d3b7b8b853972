"""`pipeline subscriptions create|list|show|update|delete`, written to the compacted topic.

The pipeline's modules (Kafka clients, models) are imported inside the commands, so `--help`
and the other commands do not pay for them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Optional

import typer

from pipeline.cli.duplicates import same_deliveries
from pipeline.cli.output import console, fail, print_rows
from pipeline.errors import InvalidInput, PipelineError

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.subscriptions.commands import SubscriptionCommands
    from pipeline.subscriptions.model import Subscription
    from pipeline.subscriptions.snapshot import Snapshot

subscriptions = typer.Typer(help="Manage subscriptions (endpoints and the events they receive).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(subscriptions, name="subscriptions")


def _settings() -> Settings:
    from pipeline.config import Settings

    return Settings()


def _current(settings: Settings) -> dict[str, Subscription]:
    from pipeline.subscriptions.snapshot import read_snapshot

    return read_snapshot(settings)


def _snapshot(settings: Settings) -> Snapshot:
    from pipeline.subscriptions.snapshot import Snapshot

    return Snapshot(settings)


def _commands(settings: Settings, snapshot: Snapshot | None = None) -> SubscriptionCommands:
    """Commands that read the topic again after each write, to see it won (pipeline.subscriptions.commands)."""
    from pipeline.subscriptions.commands import SubscriptionCommands
    from pipeline.subscriptions.writer import SubscriptionWriter

    snapshot = snapshot or _snapshot(settings)
    return SubscriptionCommands(SubscriptionWriter(settings), snapshot.get, snapshot.settle)


def _fields_from_json(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        fields = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput("--json", f"is not JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise InvalidInput("--json", "must be a JSON object of subscription fields")
    return fields


def _field_options(
    description: Optional[str], method: Optional[str], source: list[str], filter_json: Optional[str],
    header: list[str], basic: Optional[str], bearer: Optional[str], body_format: Optional[str],
    rpc_method: Optional[str], template_json: Optional[str], batch_size: Optional[int],
    batch_wait_ms: Optional[int], signing: Optional[str], ordering: Optional[str], timeout_ms: Optional[int],
) -> dict[str, Any]:
    """The fields given as options; options left out are not in the result."""
    fields: dict[str, Any] = {
        "description": description, "method": method, "sources": source or None,
        "filter": _json_option("--filter", filter_json), "headers": _headers(header) if header else None,
        "auth": _auth(basic, bearer), "body_format": body_format, "rpc_method": rpc_method,
        "template": _json_option("--template", template_json), "batch_max_events": batch_size,
        "batch_max_wait_ms": batch_wait_ms, "signing": signing, "ordering": ordering, "timeout_ms": timeout_ms,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _json_option(option: str, raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(option, f"is not JSON: {exc}") from exc


def _headers(pairs: list[str]) -> dict[str, str | None]:
    """name=value adds or overrides a header; name= removes a default one."""
    headers: dict[str, str | None] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise InvalidInput("--header", f"{pair!r} is not name=value")
        headers[name] = value or None
    return headers


def _auth(basic: str | None, bearer: str | None) -> dict[str, Any] | None:
    if basic and bearer:
        raise InvalidInput("auth", "choose --basic or --bearer, not both")
    if basic:
        username, _, password = basic.partition(":")
        return {"type": "basic", "username": username, "password": password}
    return {"type": "bearer", "token": bearer} if bearer else None


# One set of options for create and update, so the two never drift apart.
DESCRIPTION = typer.Option(None, help="What the endpoint is for.")
METHOD = typer.Option(None, help="GET, POST or PUT (GET sends parameters in the query string).")
SOURCE = typer.Option([], "--source", help="Only events from this source; repeatable.")
FILTER = typer.Option(None, "--filter", help='Content filter as JSON, e.g. \'{"data.amount": {"$gte": 100}}\'.')
HEADER = typer.Option([], "--header", "-H", help="name=value adds a header, name= removes a default one.")
BASIC = typer.Option(None, "--basic", help="user:password for HTTP basic auth.")
BEARER = typer.Option(None, "--bearer", help="Bearer token for the Authorization header.")
FORMAT = typer.Option(None, "--format", help="json, form, raw or json-rpc.")
RPC_METHOD = typer.Option(None, "--rpc-method", help="The method of json-rpc bodies.")
TEMPLATE = typer.Option(None, "--template", help="Parameter template as JSON.")
BATCH_SIZE = typer.Option(None, "--batch-size", help="Up to this many events per request, as a JSON array.")
BATCH_WAIT = typer.Option(None, "--batch-wait-ms", help="How long a batch waits to fill.")
SIGNING = typer.Option(None, "--signing", help="standard (Standard Webhooks) or hmac-sha256 (x-signature).")
ORDERING = typer.Option(None, "--ordering", help="strict, per_key or none.")
TIMEOUT = typer.Option(None, "--timeout-ms", help="Per request.")


@subscriptions.command()
def create(
    name: Optional[str] = typer.Option(None, help="A name people recognise."),
    url: Optional[str] = typer.Option(None, help="Where webhooks are sent."),
    event_type: list[str] = typer.Option([], "--event-type", "-e", help="Event type or wildcard (user.*, *); repeatable."),
    tenant: Optional[str] = typer.Option(None, help="The owner; the subscription only gets this tenant's events."),
    secret: Optional[str] = typer.Option(None, help="whsec_... signing secret; generated when omitted."),
    inactive: bool = typer.Option(False, "--inactive", help="Create it paused."),
    subscription_id: Optional[str] = typer.Option(None, "--id", help="Choose the id instead of a generated one."),
    json_fields: Optional[str] = typer.Option(None, "--json", help="Any fields as one JSON object."),
    description: Optional[str] = DESCRIPTION, method: Optional[str] = METHOD, source: list[str] = SOURCE,
    filter_json: Optional[str] = FILTER, header: list[str] = HEADER, basic: Optional[str] = BASIC,
    bearer: Optional[str] = BEARER, body_format: Optional[str] = FORMAT, rpc_method: Optional[str] = RPC_METHOD,
    template_json: Optional[str] = TEMPLATE, batch_size: Optional[int] = BATCH_SIZE,
    batch_wait_ms: Optional[int] = BATCH_WAIT, signing: Optional[str] = SIGNING, ordering: Optional[str] = ORDERING,
    timeout_ms: Optional[int] = TIMEOUT,
    force: bool = typer.Option(False, "--force", help="Create it even when one with the same URL and events exists."),
) -> None:
    """Create a subscription and its endpoint topic; refused when one already delivers the same events there."""
    settings = _settings()
    try:
        fields = _fields_from_json(json_fields)
        options = {"name": name, "url": url, "tenant": tenant, "secret": secret, "id": subscription_id,
                   "event_types": event_type or None, "active": False if inactive else None}
        fields.update({key: value for key, value in options.items() if value is not None})
        fields.update(_field_options(description, method, source, filter_json, header, basic, bearer, body_format,
                                     rpc_method, template_json, batch_size, batch_wait_ms, signing, ordering,
                                     timeout_ms))
        snapshot = _snapshot(settings)
        if not force:
            _refuse_duplicate(fields, snapshot.rows.values())
        created = _commands(settings, snapshot).create(fields)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"created [bold]{created.id}[/bold]")
    console.print(f"signing secret: {created.secret}")


def _refuse_duplicate(fields: dict[str, Any], current: Any) -> None:
    """Running the same create twice would deliver every event twice: say so instead."""
    from pipeline.models import validated
    from pipeline.subscriptions.model import SubscriptionFields

    wanted = validated(SubscriptionFields, **{key: value for key, value in fields.items() if key != "id"})
    for existing in current:
        if same_deliveries(wanted, existing):
            raise InvalidInput("url", f"subscription {existing.id} ({existing.name}) already gets these events "
                                      "at this URL, so each would be delivered twice; "
                                      "give --force to create another one anyway")


@subscriptions.command("list")
def list_(
    tenant: Optional[str] = typer.Option(None, help="Only this tenant's."),
    active: Optional[bool] = typer.Option(None, "--active/--paused", help="Only active, or only paused ones."),
    event_type: Optional[str] = typer.Option(None, "--event-type", "-e", help="Only those that want this type."),
) -> None:
    """List the subscriptions (secrets are never shown here)."""
    from pipeline.router.matching import type_matches

    listed = [subscription for subscription in sorted(_current(_settings()).values(), key=lambda s: s.created_at)
              if (tenant is None or subscription.tenant == tenant)
              and (active is None or subscription.active == active)
              and (event_type is None or any(type_matches(p, event_type) for p in subscription.event_types))]
    with_tenants = any(subscription.tenant for subscription in listed)  # no empty column when nobody has one
    headings = ["id", "name", "url", "event types", "state"] + (["tenant"] if with_tenants else [])
    rows = [[subscription.id, subscription.name, subscription.url, ", ".join(subscription.event_types),
             _state(subscription)] + ([subscription.tenant] if with_tenants else []) for subscription in listed]
    print_rows(None, headings, rows, "No subscriptions.")


def _state(subscription: Subscription) -> str:
    if subscription.active:
        return "active"
    return "paused" if subscription.paused else f"disabled: {subscription.disabled_reason}"


@subscriptions.command()
def show(subscription_id: str, show_secret: bool = typer.Option(False, "--show-secret")) -> None:
    """Show one subscription as JSON."""
    try:
        subscription = _commands(_settings()).require(subscription_id)
    except PipelineError as exc:
        raise fail(exc) from exc
    view = subscription.model_dump(mode="json") if show_secret else subscription.public_view()
    console.print_json(json.dumps(view))


@subscriptions.command()
def update(
    subscription_id: str,
    name: Optional[str] = typer.Option(None),
    url: Optional[str] = typer.Option(None),
    event_type: list[str] = typer.Option([], "--event-type", "-e"),
    active: Optional[bool] = typer.Option(None, "--active/--inactive"),
    json_fields: Optional[str] = typer.Option(None, "--json", help="Changed fields as one JSON object."),
    description: Optional[str] = DESCRIPTION, method: Optional[str] = METHOD, source: list[str] = SOURCE,
    filter_json: Optional[str] = FILTER, header: list[str] = HEADER, basic: Optional[str] = BASIC,
    bearer: Optional[str] = BEARER, body_format: Optional[str] = FORMAT, rpc_method: Optional[str] = RPC_METHOD,
    template_json: Optional[str] = TEMPLATE, batch_size: Optional[int] = BATCH_SIZE,
    batch_wait_ms: Optional[int] = BATCH_WAIT, signing: Optional[str] = SIGNING, ordering: Optional[str] = ORDERING,
    timeout_ms: Optional[int] = TIMEOUT,
) -> None:
    """Change some fields of a subscription; the rest stay as they are."""
    try:
        changes = _fields_from_json(json_fields)
        options = {"name": name, "url": url, "event_types": event_type or None, "active": active}
        changes.update({key: value for key, value in options.items() if value is not None})
        changes.update(_field_options(description, method, source, filter_json, header, basic, bearer, body_format,
                                      rpc_method, template_json, batch_size, batch_wait_ms, signing, ordering,
                                      timeout_ms))
        updated = _commands(_settings()).update(subscription_id, changes)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"updated [bold]{updated.id}[/bold]")


@subscriptions.command()
def pause(subscription_id: str) -> None:
    """Stop deliveries; events published while paused are dropped, what queued before waits."""
    _set_active(subscription_id, False)


@subscriptions.command()
def resume(subscription_id: str) -> None:
    """Deliver again (a disabled one too), starting with what queued before the pause or while disabled."""
    _set_active(subscription_id, True)


def _set_active(subscription_id: str, active: bool) -> None:
    try:
        _commands(_settings()).update(subscription_id, {"active": active})
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"{'resumed' if active else 'paused'} [bold]{subscription_id}[/bold]")


@subscriptions.command("rotate-secret")
def rotate_secret(subscription_id: str,
                  secret: Optional[str] = typer.Option(None, help="The new whsec_... secret; generated when omitted.")) -> None:
    """A new signing secret signs at once; the old one keeps signing beside it for the overlap (24 h)."""
    settings = _settings()
    try:
        rotated = _commands(settings).rotate_secret(subscription_id,
                                                    timedelta(seconds=settings.secret_rotation_overlap_s), secret)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"new signing secret: {rotated.secret}")
    console.print(f"the previous one signs too until {rotated.previous_secrets[-1].expires_at.isoformat()}")


@subscriptions.command("test")
def send_test(subscription_id: str) -> None:
    """Send a webhook.test event through the dispatcher to this subscription only."""
    from pipeline.producer.tasks import TaskPublisher, webhook_test_task

    settings = _settings()
    try:
        subscription = _commands(settings).require(subscription_id)
        task = webhook_test_task(subscription)
        TaskPublisher(settings).publish(task)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"sent test event [bold]{task.event.id}[/bold] to {subscription.url}")


@subscriptions.command()
def delete(subscription_id: str) -> None:
    """Delete a subscription (a tombstone on the compacted topic)."""
    try:
        _commands(_settings()).delete(subscription_id)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"deleted [bold]{subscription_id}[/bold]")
