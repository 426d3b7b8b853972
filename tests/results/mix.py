"""A known mix of delivery attempts and routing decisions, and the statistics it must give,
computed here independently of ClickHouse (the reference the stored aggregates are checked against)."""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

Record = dict[str, Any]


def attempts_of_event(make: Callable[..., Record], subscription_id: str, results: list[tuple[str, int | None, float]],
                      *, start_s: float, dead_letter: str | None = None, **fields: Any) -> list[Record]:
    """The attempts of one event: (outcome, status, latency_ms) per try, 20 s apart; then, with
    dead_letter (the reason), the dispatcher's dead_lettered record a second after the last try."""
    event_id = f"evt_{uuid.uuid4().hex}"
    records = [
        make(subscription_id, outcome=outcome, status_code=status, latency_ms=latency,
             seconds_later=start_s + 20 * index, event_id=event_id, attempt=index + 1, error=_error(outcome, status),
             **fields)
        for index, (outcome, status, latency) in enumerate(results)
    ]
    if dead_letter is not None:
        records.append(make(subscription_id, outcome="dead_lettered", status_code=None, latency_ms=0.0,
                            seconds_later=start_s + 20 * max(len(results) - 1, 0) + 1, event_id=event_id,
                            attempt=max(len(results), 1), error=dead_letter, request_bytes=0, response_bytes=0,
                            response_body="", **fields))
    return records


def is_attempt(record: Record) -> bool:
    """An HTTP attempt; a dead_lettered record is not one and is counted apart."""
    return record["outcome"] != "dead_lettered"


def _error(outcome: str, status: int | None) -> str | None:
    """As the dispatcher writes it: the status for HTTP errors, the failure otherwise."""
    if outcome == "success":
        return None
    return f"HTTP {status}" if status is not None else f"{outcome} (test)"


def known_mix(make: Callable[..., Record]) -> list[Record]:
    """Successes, 4xx, 5xx, timeouts, a connection error, events retried then delivered, an
    attempt of unknown outcome (its dispatcher died during it), and dead-lettered ones (schedule
    spent, a request that could not be built), over two tenants, two event types and four
    subscriptions, across several minutes."""
    acme = {"tenant": "acme", "event_type": "user.created"}
    globex = {"tenant": "globex", "event_type": "order.paid"}
    records: list[Record] = []
    for n in range(12):  # delivered at the first try
        records += attempts_of_event(make, "sub_ok", [("success", 200, 10.0 * (n + 1))], start_s=n * 15, **acme)
    records += attempts_of_event(make, "sub_ok", [], start_s=12 * 15, **acme,
                                 dead_letter="request could not be built: template: no data.user")
    for n in range(4):  # refused by the endpoint, never delivered
        records += attempts_of_event(make, "sub_4xx", [("http_error", 404, 5.0 + n), ("http_error", 404, 6.0 + n)],
                                     start_s=n * 30, dead_letter="retry schedule spent after 2 attempts: HTTP 404",
                                     **acme)
    records += attempts_of_event(make, "sub_4xx", [("http_error", 429, 3.0), ("success", 204, 4.0)], start_s=7, **acme)
    for n in range(3):  # 5xx, then 5xx again, then delivered
        records += attempts_of_event(make, "sub_5xx", [("http_error", 500, 40.0), ("http_error", 503, 50.0 + n),
                                                       ("success", 200, 60.0 + n)], start_s=n * 45, **globex)
    records += attempts_of_event(make, "sub_slow", [("timeout", None, 1000.0), ("success", 201, 300.0)], start_s=3,
                                 **globex)
    records += attempts_of_event(make, "sub_slow", [("timeout", None, 1000.0), ("timeout", None, 1000.0),
                                                    ("connection_error", None, 0.5)], start_s=33, **globex,
                                 dead_letter="retry schedule spent after 3 attempts: connection_error (test)")
    records += attempts_of_event(make, "sub_5xx", [("http_error", 503, 20.0), ("unknown", None, 0.0),
                                                   ("success", 200, 30.0)], start_s=20, **globex)
    return records


def known_decisions(base: datetime) -> list[Record]:
    """Routing decisions: 10 routed (to 1 or 2 subscriptions), 3 no_match, 2 paused, 1 filtered, 1 invalid."""
    plan = [("routed", None, ["sub_ok"] if n % 2 else ["sub_ok", "sub_5xx"]) for n in range(10)]
    plan += [("dropped", "no_match", [])] * 3 + [("dropped", "paused", [])] * 2
    plan += [("dropped", "filtered", []), ("dropped", "invalid", [])]
    return [
        {"event_id": f"evt_{uuid.uuid4().hex}", "event_type": "" if reason == "invalid" else "user.created",
         "source": "test", "tenant": "acme", "event_time": None, "decided_at": base + timedelta(seconds=7 * index),
         "matched": matched, "outcome": outcome, "reason": reason,
         "error": "not JSON (test)" if reason == "invalid" else None}
        for index, (outcome, reason, matched) in enumerate(plan)
    ]


def linear_quantile(values: list[float], level: float) -> float:
    """ClickHouse's quantiles() on fewer than 8192 values: linear interpolation between neighbours."""
    ordered = sorted(values)
    position = level * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (position - lower) * (ordered[upper] - ordered[lower])


def status_label(record: Record) -> str:
    return "none" if record["status_code"] is None else f"{record['status_code'] // 100}xx"


def expected_summary(records: list[Record], key: Callable[[Record], str]) -> dict[str, dict[str, Any]]:
    """What /v1/stats/summary must answer for these attempts, grouped by key."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return {name: _summary(group) for name, group in groups.items()}


def _summary(group: list[Record]) -> dict[str, Any]:
    """Over the HTTP attempts of the group; its dead_lettered records only in dead_lettered.
    Unknown outcomes are attempts, neither succeeded nor failed, and have no latency."""
    attempts = [record for record in group if is_attempt(record)]
    latencies = [record["latency_ms"] for record in attempts if record["outcome"] != "unknown"]
    succeeded = sum(record["outcome"] == "success" for record in attempts)
    unknown = sum(record["outcome"] == "unknown" for record in attempts)
    return {
        "attempts": len(attempts), "succeeded": succeeded, "failed": len(attempts) - succeeded - unknown,
        "unknown": unknown, "dead_lettered": len(group) - len(attempts),
        "error_rate": (len(attempts) - succeeded - unknown) / len(attempts) if attempts else None,
        "retry_attempts": sum(record["attempt"] > 1 for record in attempts),
        "succeeded_on_retry": sum(record["attempt"] > 1 and record["outcome"] == "success" for record in attempts),
        "p50_ms": linear_quantile(latencies, 0.5) if latencies else None,
        "p95_ms": linear_quantile(latencies, 0.95) if latencies else None,
        "p99_ms": linear_quantile(latencies, 0.99) if latencies else None,
        "mean_latency_ms": sum(latencies) / len(latencies) if latencies else None,
        "max_latency_ms": max(latencies) if latencies else None,
        "request_bytes": sum(record["request_bytes"] for record in attempts),
        "response_bytes": sum(record["response_bytes"] for record in attempts),
        "outcomes": dict(Counter(record["outcome"] for record in attempts)),
        "statuses": dict(Counter(status_label(record) for record in attempts)),
        "last_attempt_at": max(record["started_at"] for record in attempts).isoformat() if attempts else None,
    }


def expected_per_minute(records: list[Record], metric: Callable[[Record], bool]) -> dict[str, dict[str, int]]:
    """Per subscription, how many attempts meeting metric fall in each minute (ISO of the minute's start)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        if metric(record):
            minute = record["started_at"].replace(second=0, microsecond=0)
            counts[record["subscription_id"]][minute.isoformat()] += 1
    return {key: dict(counter) for key, counter in counts.items()}
