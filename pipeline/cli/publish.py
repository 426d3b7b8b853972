"""`pipeline publish`: one event from arguments, or many from a JSON-lines file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from pipeline.cli.output import console, fail
from pipeline.errors import InvalidInput, PipelineError

if TYPE_CHECKING:
    from pipeline.models import Event


def register(app: typer.Typer) -> None:
    app.command()(publish)


def publish(
    event_type: Optional[str] = typer.Option(None, "--type", "-t", help="Event type, e.g. user.created."),
    data: str = typer.Option("{}", "--data", "-d", help="The event's data as JSON."),
    key: Optional[str] = typer.Option(None, "--key", "-k", help="Ordering key: same key, same order."),
    source: str = typer.Option("cli", "--source", help="Who emitted the event."),
    tenant: str = typer.Option("", "--tenant"),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="JSON-lines file of event envelopes."),
) -> None:
    """Publish events to the events topic."""
    from rich.progress import track

    from pipeline.config import Settings
    from pipeline.producer import EventPublisher

    settings = Settings()
    try:
        events = _from_file(file) if file else [_from_arguments(event_type, data, key, source, tenant)]
        with EventPublisher(settings) as publisher:
            for event in track(events, description="publishing", disable=len(events) < 100, console=console):
                publisher.publish(event)
    except PipelineError as exc:
        raise fail(exc) from exc
    if len(events) == 1:
        console.print(f"published [bold]{events[0].id}[/bold] ({events[0].type})")
    else:
        console.print(f"published {len(events)} events")


def _from_arguments(event_type: str | None, data: str, key: str | None, source: str, tenant: str) -> Event:
    if not event_type:
        raise InvalidInput("type", "is required (--type), or give --file")
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise InvalidInput("data", f"is not JSON: {exc}") from exc
    return _event({"type": event_type, "data": payload, "ordering_key": key, "source": source, "tenant": tenant})


def _from_file(path: Path) -> list[Event]:
    events = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
        except ValueError as exc:
            raise InvalidInput(f"line {number}", f"is not JSON: {exc}") from exc
        if not isinstance(envelope, dict):
            raise InvalidInput(f"line {number}", "must be a JSON object")
        try:
            events.append(_event(envelope))
        except InvalidInput as exc:
            raise InvalidInput(f"line {number}: {exc.field}", exc.problem) from exc
    return events


def _event(envelope: dict) -> Event:
    from pipeline.models import event_from_envelope

    return event_from_envelope(envelope)
