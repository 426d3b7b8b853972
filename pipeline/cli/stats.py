"""`pipeline stats`: delivery statistics per subscription, asked of the results service."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.output import console, errors
from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.results.client import fetch_stats


def default_results_url() -> str:
    return f"http://127.0.0.1:{Settings().results_port}"


def stats(
    subscription: str | None = typer.Option(None, "--subscription", help="Only this subscription id."),
    results_url: str = typer.Option(
        default_factory=default_results_url,
        show_default="http://127.0.0.1:<results port of the settings>",
        help="The results service's query server.",
    ),
) -> None:
    """Delivered, failed and attempted deliveries, and latency percentiles, per subscription."""
    try:
        rows = fetch_stats(results_url, subscription)
    except ServiceError as exc:
        # Exit 1, not output.fail's 2: the input was fine, a service is missing.
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    if not rows:
        typer.echo("No delivery attempts recorded yet." if subscription is None else f"No attempts for {subscription}.")
        return
    console.print(stats_table(rows))


def stats_table(rows: list[dict[str, Any]]) -> Table:
    cells = [
        [
            str(row["delivered"]),
            str(row["failed"]),
            str(row["attempts"]),
            _millis(row["p50_ms"]),
            _millis(row["p99_ms"]),
            _utc_seconds(row["last_attempt_at"]),
        ]
        for row in rows
    ]
    table = Table(title="Deliveries per subscription")
    table.add_column("subscription", min_width=12, overflow="fold")  # long ids fold, never cut short
    for index, heading in enumerate(("delivered", "failed", "attempts", "p50 ms", "p99 ms")):
        # Numbers are as wide as their widest value: a cut figure would mislead.
        widest = max([len(heading)] + [len(row[index]) for row in cells])
        table.add_column(heading, justify="right", min_width=widest)
    table.add_column("last attempt", overflow="fold")
    for row, row_cells in zip(rows, cells):
        table.add_row(row["subscription_id"], *row_cells)
    return table


def _millis(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _utc_seconds(iso_time: str | None) -> str:
    if not iso_time:
        return "-"
    return datetime.fromisoformat(iso_time).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
