"""The statistics queries: request parameters in, JSON-ready answers out.

The SQL is in deploy/clickhouse/queries (one file per query); this module checks the
parameters, runs the files through the store, and shapes the rows: time series become one
shared time axis with a column of values per key, with empty buckets filled in, so a chart
can draw them as they come.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pipeline.errors import InvalidInput
from pipeline.results.store import AsyncResultsStore
from pipeline.results.timerange import TimeRange, parse_time_range

# `by` as the API names it -> the rollup column it groups by.
DIMENSIONS = {
    "subscription": "subscription_id", "subscription_id": "subscription_id", "tenant": "tenant",
    "event_type": "event_type", "outcome": "outcome", "status": "status",
}
ATTEMPT_FILTERS = ("subscription_id", "tenant", "event_type", "outcome", "status")
ROUTING_FILTERS = ("tenant", "event_type")
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")  # the levels of the rollup's quantile state, in order
DEFAULT_LIMITS = {"last_attempts": 10, "errors": 50}
MAX_LIMIT = 1000


def json_safe(value: Any) -> Any:
    """Datetimes as ISO 8601 in UTC; NaN and infinities (no JSON for them) as null."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    return value


def json_safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: json_safe(value) for name, value in row.items()}


def filters(query: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """Every filter as a parameter: the SQL reads '' as "all"."""
    return {name: query.get(name, "") for name in names}


def dimension(query: Mapping[str, str]) -> str:
    by = query.get("by", "subscription_id")
    if by not in DIMENSIONS:
        raise InvalidInput("by", f"{by!r} is not one of {', '.join(sorted(set(DIMENSIONS)))}")
    return DIMENSIONS[by]


def limit(query: Mapping[str, str], default: int) -> int:
    text = query.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidInput("limit", f"{text!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def with_rates(row: dict[str, Any]) -> dict[str, Any]:
    """Adds error_rate and the named percentiles to a row of attempts, succeeded, failed, latency_ms."""
    attempts = row["attempts"]
    shaped = dict(row)
    shaped["error_rate"] = row["failed"] / attempts if attempts else None
    for name, value in zip(PERCENTILES, shaped.pop("latency_ms", None) or [None] * len(PERCENTILES), strict=True):
        shaped[name] = value if attempts else None
    return shaped


def series(rows: list[dict[str, Any]], time_range: TimeRange, metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per key with a column per metric over time_range.times; missing buckets get the metric's filler."""
    index = {moment: position for position, moment in enumerate(time_range.times)}
    by_key: dict[str, dict[str, list[Any]]] = {}
    for row in rows:
        columns = by_key.setdefault(row["key"], {name: [fill] * len(index) for name, fill in metrics.items()})
        position = index.get(row["time"].astimezone(timezone.utc))
        if position is None:
            continue  # cannot happen with aligned ranges; a stray bucket is not worth a 500
        for name in metrics:
            columns[name][position] = json_safe(row[name])
    return [{"key": key} | columns for key, columns in by_key.items()]


# dead_lettered: deliveries parked in the dead-letter topic; the SQL keeps them out of the attempts.
# unknown: attempts whose dispatcher died during the request; neither succeeded nor failed.
TRAFFIC_METRICS = ({"attempts": 0, "succeeded": 0, "failed": 0, "unknown": 0, "dead_lettered": 0, "error_rate": None}
                   | dict.fromkeys(PERCENTILES))


class StatsQueries:
    """Every statistics question the API answers, over one store."""

    def __init__(self, store: AsyncResultsStore):
        self.store = store

    async def traffic(self, query: Mapping[str, str]) -> dict[str, Any]:
        time_range = parse_time_range(query)
        by = dimension(query)
        parameters = time_range.parameters() | {"by": by} | filters(query, ATTEMPT_FILTERS)
        rows = [with_rates(row) for row in await self.store.query("traffic", parameters)]
        return _range_json(time_range, series=True) | {"by": by, "series": series(rows, time_range, TRAFFIC_METRICS)}

    async def summary(self, query: Mapping[str, str]) -> dict[str, Any]:
        time_range = parse_time_range(query)
        by = dimension(query)
        parameters = time_range.parameters() | {"by": by} | filters(query, ATTEMPT_FILTERS)
        rows = [json_safe_row(with_rates(row)) for row in await self.store.query("summary", parameters)]
        return _range_json(time_range) | {"by": by, "rows": rows}

    async def last_attempts(self, query: Mapping[str, str]) -> dict[str, Any]:
        parameters = (filters(query, ("subscription_id", "tenant"))
                      | {"limit": limit(query, DEFAULT_LIMITS["last_attempts"])})
        return {"attempts": [json_safe_row(row) for row in await self.store.query("last_attempts", parameters)]}

    async def errors(self, query: Mapping[str, str]) -> dict[str, Any]:
        time_range = parse_time_range(query)
        parameters = (time_range.parameters() | filters(query, ("subscription_id", "tenant", "event_type"))
                      | {"limit": limit(query, DEFAULT_LIMITS["errors"])})
        errors = await self.store.query("error_log", parameters)
        reasons = await self.store.query("error_reasons", parameters)
        return _range_json(time_range) | {
            "errors": [json_safe_row(row) for row in errors],
            "reasons": [json_safe_row(row) for row in reasons],
        }

    async def routing(self, query: Mapping[str, str]) -> dict[str, Any]:
        time_range = parse_time_range(query)
        parameters = time_range.parameters() | filters(query, ROUTING_FILTERS)
        rows = await self.store.query("routing", parameters)
        totals = await self.store.query("routing_totals", parameters)
        return _range_json(time_range, series=True) | {
            "series": series(rows, time_range, {"decisions": 0, "routes": 0}),
            "totals": [json_safe_row(row) for row in totals],
        }

    async def subscriptions(self, query: Mapping[str, str]) -> dict[str, Any]:
        rows = await self.store.stats(query.get("subscription_id"), query.get("tenant"))
        return {"subscriptions": [json_safe_row(row) for row in rows]}


def _range_json(time_range: TimeRange, *, series: bool = False) -> dict[str, Any]:
    """The range answered; for time series also the step and the start of every bucket."""
    answer = {"from": json_safe(time_range.start), "to": json_safe(time_range.end)}
    if series:
        answer |= {"step_s": time_range.step_s, "times": [json_safe(moment) for moment in time_range.times]}
    return answer
