"""`pipeline stats`: delivery statistics, asked of the results service.

`pipeline stats` alone prints the all-time table per subscription; its subcommands answer the
other questions: `traffic` (over time), `summary` (per key over a range), `last [SUB]` (the last
attempts of a subscription, with `--headers` what they sent), `errors` (the error log and its
reasons), `routing` (drops by reason), `backlog [SUB]` (tasks waiting in each endpoint topic, and
the oldest one's age, asked of Kafka; `pipeline stats --backlog` adds them to the overview).
Times: ISO 8601, `now`, or an age such as 15m, 2h, 7d. The results service is asked with
PIPELINE_API_TOKEN, or an admin token of PIPELINE_API_TOKENS (the local one when unset).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.output import errors, print_rows, rows_table
from pipeline.errors import ServiceError

stats_app = typer.Typer(help="Delivery statistics from the results service.", no_args_is_help=False)

SINCE = typer.Option("1h", "--since", help="Start: ISO 8601, `now` or an age (15m, 2h, 7d).")
UNTIL = typer.Option(None, "--until", help="End (default: now).")
BY = typer.Option("subscription_id", "--by", help="subscription_id, tenant, event_type, outcome or status.")
SUBSCRIPTION = typer.Option(None, "--subscription", help="Only this subscription id.")
TENANT = typer.Option(None, "--tenant", help="Only this tenant.")
EVENT_TYPE = typer.Option(None, "--event-type", help="Only this event type.")
RESULTS_URL = typer.Option(None, "--results-url", help="The results service's query server (default: the group's).")
STEP = typer.Option(None, "--step", help="Seconds per row, a multiple of 60 (default: automatic).")
LIMIT_HELP = "How many attempts to list."


def default_results_url() -> str:
    from pipeline.config import Settings

    return f"http://127.0.0.1:{Settings().results_port}"


def fetch(base_url: str, path: str, query: dict[str, str | None]) -> Any:
    from pipeline.results import client  # httpx: imported only by the commands that ask the service

    return client.fetch(base_url, path, query, token=_token())


def _token() -> str:
    """The token the CLI presents to the results service (see pipeline.tokens.client_token)."""
    from pipeline.config import Settings
    from pipeline.tokens import client_token

    return client_token(Settings())


@stats_app.callback(invoke_without_command=True)
def overview(
    ctx: typer.Context,
    subscription: str | None = SUBSCRIPTION,
    results_url: str | None = typer.Option(
        None,
        show_default="http://127.0.0.1:<results port of the settings>",
        help="The results service's query server.",
    ),
    backlog: bool = typer.Option(False, "--backlog", help="Add each subscription's backlog (asked of Kafka)."),
) -> None:
    """Delivered, failed and attempted deliveries, and latency percentiles, per subscription (all time)."""
    ctx.obj = {"results_url": results_url}
    if ctx.invoked_subcommand is not None:
        return
    from pipeline.results.client import fetch_stats

    rows = _answer(lambda: fetch_stats(_url(ctx, None), subscription, token=_token()))
    empty = "No delivery attempts recorded yet." if subscription is None else f"No attempts for {subscription}."
    cells = [_stats_cells(row) for row in rows]
    headings = list(STATS_HEADINGS)
    if backlog and rows:
        found = _answer(lambda: _read_backlogs([row["subscription_id"] for row in rows]))
        cells = [row + _backlog_cells(found[row[0]]) for row in cells]
        headings += BACKLOG_HEADINGS
    print_rows("Deliveries per subscription", headings, cells, empty)


@stats_app.command("backlog")
def backlog_of(subscription_id: str | None = typer.Argument(None, metavar="[SUB]", help="Only this subscription id."),
               pending_only: bool = typer.Option(False, "--pending-only", help="Only subscriptions with a backlog.")
               ) -> None:
    """Tasks waiting in each endpoint topic (end offset minus the dispatchers' committed offset), and
    when the oldest was routed and its age in seconds; asked of Kafka."""
    from pipeline.config import Settings
    from pipeline.subscriptions.snapshot import read_snapshot

    known = _answer(lambda: read_snapshot(Settings()))
    if subscription_id is not None and subscription_id not in known:
        errors.print(f"[red]error:[/red] no subscription {escape(subscription_id)!r}")
        raise typer.Exit(2)
    ids = [subscription_id] if subscription_id else sorted(known, key=lambda s: known[s].created_at)
    found = _answer(lambda: _read_backlogs(ids))
    rows = [[s, known[s].name, *_backlog_cells(found[s])] for s in ids if found[s].pending or not pending_only]
    print_rows("Backlog per subscription", ["subscription", "name", *BACKLOG_HEADINGS], rows,
               "No subscriptions." if not pending_only else "Nothing pending.")


BACKLOG_HEADINGS = ["pending", "oldest pending", "age s"]


def _read_backlogs(subscription_ids: list[str]) -> dict[str, Any]:
    from pipeline.config import Settings
    from pipeline.subscriptions.backlog import BacklogReader

    return BacklogReader(Settings()).read(subscription_ids)


def _backlog_cells(backlog: Any) -> list[Any]:
    view = backlog.view()
    age = view["oldest_pending_age_s"]
    return [view["pending"], _utc(view["oldest_pending_at"]), "-" if age is None else f"{age:.1f}"]


@stats_app.command("traffic")
def traffic(ctx: typer.Context, since: str = SINCE, until: str | None = UNTIL,
            step: int | None = STEP, by: str = BY, subscription: str | None = SUBSCRIPTION, tenant: str | None = TENANT,
            event_type: str | None = EVENT_TYPE, results_url: str | None = RESULTS_URL) -> None:
    """Attempts, failures, error rate and latency per time step and key (quiet steps left out)."""
    query = {"from": since, "to": until, "step": str(step) if step else None, "by": by,
             "subscription_id": subscription, "tenant": tenant, "event_type": event_type}
    body = _answer(lambda: fetch(_url(ctx, results_url), "/v1/stats/traffic", query))
    rows = [[_utc(time), s["key"], s["attempts"][i], s["failed"][i], _percent(s["error_rate"][i]),
             _millis(s["p50_ms"][i]), _millis(s["p95_ms"][i]), _millis(s["p99_ms"][i])]
            for s in body["series"] for i, time in enumerate(body["times"]) if s["attempts"][i]]
    rows.sort(key=lambda row: (row[0], row[1]))
    _print(f"Traffic by {body['by']}, steps of {body['step_s']} s", ["time", body["by"], "attempts", "failed",
           "error rate", "p50 ms", "p95 ms", "p99 ms"], rows, "No attempts in this range.")


@stats_app.command("summary")
def summary(ctx: typer.Context, since: str = SINCE, until: str | None = UNTIL, by: str = BY,
            subscription: str | None = SUBSCRIPTION, tenant: str | None = TENANT,
            event_type: str | None = EVENT_TYPE, results_url: str | None = RESULTS_URL) -> None:
    """Totals per key over a time range: outcomes, status classes, retries, latency."""
    query = {"from": since, "to": until, "by": by, "subscription_id": subscription, "tenant": tenant,
             "event_type": event_type}
    body = _answer(lambda: fetch(_url(ctx, results_url), "/v1/stats/summary", query))
    rows = [[row["key"], row["attempts"], row["succeeded"], row["failed"], row.get("unknown", 0),
             _percent(row["error_rate"]), row["succeeded_on_retry"], row.get("dead_lettered", 0),
             _millis(row["p50_ms"]), _millis(row["p95_ms"]), _millis(row["p99_ms"]), _counts(row["statuses"])]
            for row in body["rows"]]
    _print(f"Since {_utc(body['from'])}, by {body['by']}", [body["by"], "attempts", "succeeded", "failed",
           "unknown", "error rate", "ok on retry", "dead-lettered", "p50 ms", "p95 ms", "p99 ms", "statuses"], rows,
           "No attempts in this range.", lead=1)


@stats_app.command("last")
def last(ctx: typer.Context,
         subscription_id: str | None = typer.Argument(None, metavar="[SUB]", help="Only this subscription id."),
         subscription: str | None = SUBSCRIPTION, tenant: str | None = TENANT,
         limit: int = typer.Option(10, "--limit", help=LIMIT_HELP),
         headers: bool = typer.Option(False, "--headers", help="Add the request headers sent (credentials masked)."),
         results_url: str | None = RESULTS_URL) -> None:
    """The last attempts of a subscription (or of all), newest first."""
    if subscription_id and subscription and subscription_id != subscription:
        raise typer.BadParameter("give the subscription once, as SUB or --subscription", param_hint="SUB")
    query = {"subscription_id": subscription_id or subscription, "tenant": tenant, "limit": str(limit)}
    body = _answer(lambda: fetch(_url(ctx, results_url), "/v1/attempts", query))
    rows = [[_utc(a["started_at"]), a["subscription_id"], a["event_type"], a["attempt"], a["status_code"] or "-",
             a["outcome"], _millis(a["latency_ms"]), (a["error"] or a["response_body"] or "")[:60]]
            + ([_header_lines(a.get("request_headers") or {})] if headers else [])
            for a in body["attempts"]]
    headings = ["time", "subscription", "event type", "try", "status", "outcome", "ms", "error or response"]
    _print("Last attempts", headings + (["request headers"] if headers else []), rows, "No attempts recorded.")


def _header_lines(headers: dict[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in sorted(headers.items()))


@stats_app.command("errors")
def error_log(ctx: typer.Context, since: str = SINCE, until: str | None = UNTIL,
              subscription: str | None = SUBSCRIPTION, tenant: str | None = TENANT,
              event_type: str | None = EVENT_TYPE, limit: int = typer.Option(20, "--limit", help=LIMIT_HELP),
              results_url: str | None = RESULTS_URL) -> None:
    """Why attempts failed (counts per reason), then the failed attempts, newest first."""
    query = {"from": since, "to": until, "subscription_id": subscription, "tenant": tenant, "event_type": event_type,
             "limit": str(limit)}
    body = _answer(lambda: fetch(_url(ctx, results_url), "/v1/errors", query))
    reasons = [[r["outcome"], r["status_code"] or "-", r["reason"], r["attempts"], r["events"],
                _utc(r["last_seen"])] for r in body["reasons"]]
    _print("Failure reasons", ["outcome", "status", "reason", "attempts", "events", "last seen"], reasons,
           "No failed attempts in this range.")
    failed = [[_utc(e["started_at"]), e["subscription_id"], e["event_id"], e["attempt"], e["outcome"],
               e["status_code"] or "-", (e["error"] or "")[:60]] for e in body["errors"]]
    if failed:
        _print("Error log", ["time", "subscription", "event", "try", "outcome", "status", "error"], failed, "")


@stats_app.command("routing")
def routing(ctx: typer.Context, since: str = SINCE, until: str | None = UNTIL, tenant: str | None = TENANT,
            event_type: str | None = EVENT_TYPE, results_url: str | None = RESULTS_URL) -> None:
    """Events routed, and events dropped by reason (no_match, paused, filtered, invalid)."""
    query = {"from": since, "to": until, "tenant": tenant, "event_type": event_type}
    body = _answer(lambda: fetch(_url(ctx, results_url), "/v1/stats/routing", query))
    rows = [[row["outcome"], row["reason"] or "-", row["decisions"], row["routes"]] for row in body["totals"]]
    _print(f"Routing since {_utc(body['from'])}", ["outcome", "reason", "events", "deliveries"], rows,
           "No routing decisions in this range.")


STATS_HEADINGS = ("subscription", "delivered", "failed", "unknown", "attempts", "p50 ms", "p99 ms", "last attempt")


def stats_table(rows: list[dict[str, Any]]) -> Table:
    return rows_table("Deliveries per subscription", STATS_HEADINGS, [_stats_cells(row) for row in rows])


def _stats_cells(row: dict[str, Any]) -> list[Any]:
    return [row["subscription_id"], row["delivered"], row["failed"], row.get("unknown", 0), row["attempts"],
            _millis(row["p50_ms"]),
            _millis(row["p99_ms"]), _utc(row["last_attempt_at"])]


def _url(ctx: typer.Context, results_url: str | None) -> str:
    """The subcommand's --results-url, else the group's, else the settings' (read only now: they cost time)."""
    return results_url or ctx.obj["results_url"] or default_results_url()


def _answer(call: Any) -> Any:
    try:
        return call()
    except ServiceError as exc:
        # Exit 1, not output.fail's 2: the input was fine, a service is missing (or refused a parameter).
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc


def _print(title: str, headings: list[str], rows: list[list[Any]], empty: str, lead: int = 2) -> None:
    """A block per row when the table is too wide, headed by its first `lead` cells (a time and a key)."""
    print_rows(title, headings, rows, empty, lead=lead)


def _millis(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()) if count)


def _utc(iso_time: str | None) -> str:
    if not iso_time:
        return "-"
    return datetime.fromisoformat(iso_time).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def register(app: typer.Typer) -> None:
    app.add_typer(stats_app, name="stats")
