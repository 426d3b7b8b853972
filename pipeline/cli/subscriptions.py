"""`pipeline subscriptions create|list|show|update|delete`, written to the compacted topic."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.table import Table

from pipeline.cli.output import console, fail
from pipeline.config import Settings
from pipeline.errors import InvalidInput, PipelineError
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.snapshot import read_snapshot
from pipeline.subscriptions.writer import SubscriptionWriter

subscriptions = typer.Typer(help="Manage subscriptions (endpoints and the events they receive).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(subscriptions, name="subscriptions")


def _commands(settings: Settings) -> SubscriptionCommands:
    current = read_snapshot(settings)
    return SubscriptionCommands(SubscriptionWriter(settings), current.get)


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


@subscriptions.command()
def create(
    name: Optional[str] = typer.Option(None, help="A name people recognise."),
    url: Optional[str] = typer.Option(None, help="Where webhooks are sent."),
    event_type: list[str] = typer.Option([], "--event-type", "-e", help="Event type or wildcard (user.*, *); repeatable."),
    tenant: Optional[str] = typer.Option(None, help="The owner; the subscription only gets this tenant's events."),
    secret: Optional[str] = typer.Option(None, help="whsec_... signing secret; generated when omitted."),
    inactive: bool = typer.Option(False, "--inactive", help="Create it paused."),
    subscription_id: Optional[str] = typer.Option(None, "--id", help="Choose the id instead of a generated one."),
    json_fields: Optional[str] = typer.Option(None, "--json", help="All fields as one JSON object."),
) -> None:
    """Create a subscription and its endpoint topic."""
    settings = Settings()
    try:
        fields = _fields_from_json(json_fields)
        options = {"name": name, "url": url, "tenant": tenant, "secret": secret, "id": subscription_id,
                   "event_types": event_type or None, "active": False if inactive else None}
        fields.update({key: value for key, value in options.items() if value is not None})
        created = _commands(settings).create(fields)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"created [bold]{created.id}[/bold]")
    console.print(f"signing secret: {created.secret}")


@subscriptions.command("list")
def list_() -> None:
    """List the subscriptions (secrets are never shown here)."""
    table = Table("id", "name", "url", "event types", "active", "tenant")
    for subscription in sorted(read_snapshot(Settings()).values(), key=lambda s: s.created_at):
        table.add_row(subscription.id, subscription.name, subscription.url, ", ".join(subscription.event_types),
                      "yes" if subscription.active else "paused", subscription.tenant)
    console.print(table)


@subscriptions.command()
def show(subscription_id: str, show_secret: bool = typer.Option(False, "--show-secret")) -> None:
    """Show one subscription as JSON."""
    try:
        subscription = _commands(Settings()).require(subscription_id)
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
) -> None:
    """Change some fields of a subscription; the rest stay as they are."""
    try:
        changes = _fields_from_json(json_fields)
        options = {"name": name, "url": url, "event_types": event_type or None, "active": active}
        changes.update({key: value for key, value in options.items() if value is not None})
        updated = _commands(Settings()).update(subscription_id, changes)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"updated [bold]{updated.id}[/bold]")


@subscriptions.command()
def delete(subscription_id: str) -> None:
    """Delete a subscription (a tombstone on the compacted topic)."""
    try:
        _commands(Settings()).delete(subscription_id)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"deleted [bold]{subscription_id}[/bold]")
