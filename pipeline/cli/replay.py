"""`pipeline replay`, `pipeline redrive` and `pipeline recover`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from pipeline.cli.output import console, fail
from pipeline.errors import PipelineError
from pipeline.replay.moments import parse_moment

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.replay.replayer import Replayer


def register(app: typer.Typer) -> None:
    app.command()(replay)
    app.command()(redrive)
    app.command()(recover)


def replay(subscription_id: str,
           since: str = typer.Option(..., help="From this time: ISO-8601, or an age like 2h."),
           until: Optional[str] = typer.Option(None, help="Up to this time (default: now).")) -> None:
    """Deliver again what a subscription was sent in a time range, in its original order."""
    settings, replayer = _replayer()
    try:
        _require(settings, subscription_id)
        count = replayer.replay(subscription_id, parse_moment(since, "--since"),
                                          parse_moment(until, "--until") if until else None)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"replaying {count} deliveries to {subscription_id}")


def redrive(subscription_id: str,
            since: Optional[str] = typer.Option(None, help="Every dead letter from this time on, redriven before or not.")) -> None:
    """Send a subscription's dead-lettered deliveries again: those parked since its last redrive."""
    settings, replayer = _replayer()
    try:
        _require(settings, subscription_id)
        count = replayer.redrive(parse_moment(since, "--since") if since else None, subscription_id)
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"redriving {count} dead letters to {subscription_id}")


def recover(since: str = typer.Option(..., help="Every failure from this time on: ISO-8601, or an age.")) -> None:
    """Send again every delivery that was dead-lettered since a time, for every subscription."""
    _, replayer = _replayer()
    try:
        count = replayer.redrive(parse_moment(since, "--since"))
    except PipelineError as exc:
        raise fail(exc) from exc
    console.print(f"recovering {count} dead letters")


def _replayer() -> tuple[Settings, Replayer]:
    from pipeline.config import Settings
    from pipeline.replay.replayer import Replayer

    settings = Settings()
    return settings, Replayer(settings)


def _require(settings: Settings, subscription_id: str) -> None:
    from pipeline.subscriptions.commands import UnknownSubscription
    from pipeline.subscriptions.snapshot import read_snapshot

    if subscription_id not in read_snapshot(settings):
        raise UnknownSubscription(subscription_id)
