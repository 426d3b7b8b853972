"""`pipeline events show ID` (what happened to one event) and `pipeline events resend ID --subscription SUB`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.output import console, errors, fail
from pipeline.errors import InvalidInput, PipelineError

events_app = typer.Typer(help="Find one event: where it was routed, every attempt; resend it.", no_args_is_help=True)
NAMES_TIMEOUT_S = 5.0
RESULTS_URL = typer.Option(None, "--results-url", help="The results service's query server (default: the settings').")
WHY_DROPPED = {
    "no_match": "no subscription of its tenant takes its type",
    "paused": "the subscriptions that take its type are paused",
    "filtered": "the subscriptions that take its type filtered it out (sources or content filter)",
    "invalid": "it could not be decoded or validated, and went to the dead-letter topic",
}


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")


@events_app.command("show")
def show(event_id: str, results_url: str | None = RESULTS_URL) -> None:
    """Where the event was routed or why not, and every attempt per subscription."""
    trail = _trail(event_id, results_url)
    names = _subscription_names()
    console.print(f"[bold]{escape(trail['event_id'])}[/bold]  {escape(trail['event_type'] or '-')}  "
                  f"tenant {escape(trail['tenant'] or '-')}  source {escape(trail['source'] or '-')}  "
                  f"time {trail['event_time'] or '-'}")
    for line in routing_lines(trail, names):
        console.print(escape(line))
    for delivery in trail["deliveries"]:
        console.print(delivery_table(delivery, names))


@events_app.command("resend")
def resend(event_id: str, subscription: str = typer.Option(..., "--subscription", help="The subscription to send it to."),
           results_url: str | None = RESULTS_URL) -> None:
    """Send the event again to one subscription (read again from the events topic, while it holds it)."""
    from pipeline.config import Settings
    from pipeline.producer.tasks import TaskPublisher
    from pipeline.replay.resend import Resender
    from pipeline.subscriptions.commands import UnknownSubscription
    from pipeline.subscriptions.snapshot import read_snapshot

    settings = Settings()
    trail = _trail(event_id, results_url)
    try:
        target = read_snapshot(settings).get(subscription)
        if target is None:
            raise UnknownSubscription(subscription)
        task = Resender(settings, TaskPublisher(settings)).resend(trail, target)
    except InvalidInput as exc:
        raise fail(exc) from exc
    except PipelineError as exc:
        raise _unavailable(exc) from exc
    console.print(f"resent {task.event.id} ({task.event.type}) to {subscription}")


def routing_lines(trail: dict[str, Any], names: dict[str, str]) -> list[str]:
    if not trail["routing"]:
        return ["not routed by the router: sent straight to its subscription (a test send or a resend)"]
    lines = []
    for decision in trail["routing"]:
        if decision["outcome"] == "routed":
            lines.append(f"{decision['decided_at']}  routed to "
                         f"{', '.join(_label(s, names) for s in decision['matched'])}")
        else:
            why = WHY_DROPPED.get(decision["reason"], decision["reason"])
            error = f": {decision['error']}" if decision["error"] else ""
            lines.append(f"{decision['decided_at']}  dropped ({decision['reason']}): {why}{error}")
    return lines


def delivery_table(delivery: dict[str, Any], names: dict[str, str]) -> Table:
    title = f"{escape(_label(delivery['subscription_id'], names))}: {delivery['state']}"
    table = Table(title=title, title_justify="left")
    for heading in ("time", "try", "status", "outcome", "ms", "error or response"):
        table.add_column(heading, overflow="fold")
    for attempt in delivery["attempts"]:
        table.add_row(attempt["started_at"], str(attempt["attempt"]), str(attempt["status_code"] or "-"),
                      attempt["outcome"], f"{attempt['latency_ms']:.1f}",
                      escape((attempt["error"] or attempt["response_body"] or "")[:80]))
    return table


def _label(subscription_id: str, names: dict[str, str]) -> str:
    name = names.get(subscription_id)
    return f"{subscription_id} ({name})" if name else subscription_id


def _subscription_names() -> dict[str, str]:
    """Names to show beside ids; without Kafka the ids alone still answer the question."""
    from confluent_kafka import KafkaException

    from pipeline.config import Settings
    from pipeline.subscriptions.snapshot import read_snapshot

    try:
        return {s.id: s.name for s in read_snapshot(Settings(), timeout_s=NAMES_TIMEOUT_S).values()}
    except (PipelineError, KafkaException):
        return {}


def _trail(event_id: str, results_url: str | None) -> dict[str, Any]:
    from pipeline.config import Settings
    from pipeline.results.client import fetch
    from pipeline.tokens import client_token

    settings = Settings()
    url = results_url or f"http://127.0.0.1:{settings.results_port}"
    try:
        return fetch(url, f"/v1/events/{quote(event_id, safe='')}", token=client_token(settings))
    except PipelineError as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: PipelineError) -> typer.Exit:
    """Exit 1, not output.fail's 2: the input was fine, or the service found nothing."""
    errors.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(1)
