"""A known mix through Kafka, the sink and the query server: every aggregate exactly as computed here.

The mix holds dead_lettered records too: they are counted as dead_lettered, never as attempts."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from pipeline.results import client
from tests.results.mix import expected_per_minute, expected_summary, is_attempt, status_label

pytestmark = pytest.mark.integration

FLOATS = ("error_rate", "p50_ms", "p95_ms", "p99_ms", "mean_latency_ms", "max_latency_ms")


async def fetch(base_url: str, token: str, path: str, query: dict) -> dict:
    return await asyncio.to_thread(partial(client.fetch, base_url, path, query, token=token))


@pytest.mark.parametrize("by, key", [
    ("subscription_id", lambda r: r["subscription_id"]), ("tenant", lambda r: r["tenant"]),
    ("event_type", lambda r: r["event_type"]), ("status", status_label), ("outcome", lambda r: r["outcome"]),
])
async def test_summary_by_every_dimension_is_exact(stored_mix, by, key, admin_token):
    records, _, window, base_url = stored_mix

    answer = await fetch(base_url, admin_token, "/v1/stats/summary", window | {"by": by})

    got = {row.pop("key"): row for row in answer["rows"]}
    expected = expected_summary(records, key)
    assert set(got) == set(expected)
    for name, want in expected.items():
        for metric, value in want.items():
            exact = metric not in FLOATS or value is None
            assert got[name][metric] == (value if exact else pytest.approx(value, rel=1e-9)), (name, metric)
    assert sum(row["dead_lettered"] for row in got.values()) == 6


async def test_traffic_per_minute_is_exact_and_empty_minutes_are_zero(stored_mix, admin_token):
    records, _, window, base_url = stored_mix

    answer = await fetch(base_url, admin_token, "/v1/stats/traffic", window | {"step": "60"})

    # 20 minutes from a time within a minute: 21 buckets, the first starting at that minute
    assert answer["step_s"] == 60 and len(answer["times"]) == 21
    for metric, wanted in (("attempts", is_attempt),
                           ("failed", lambda r: is_attempt(r) and r["outcome"] not in ("success", "unknown")),
                           ("unknown", lambda r: r["outcome"] == "unknown"),
                           ("dead_lettered", lambda r: not is_attempt(r))):
        expected = expected_per_minute(records, wanted)
        for series in answer["series"]:
            by_minute = dict(zip(answer["times"], series[metric], strict=True))
            nonzero = {minute: count for minute, count in by_minute.items() if count}
            assert nonzero == expected.get(series["key"], {}), (series["key"], metric)
            assert 0 in by_minute.values()  # the quiet minutes of the window are there, as zeros
    sub_ok = next(series for series in answer["series"] if series["key"] == "sub_ok")
    busy = [index for index, count in enumerate(sub_ok["attempts"]) if count]
    assert all(sub_ok["p50_ms"][index] is not None for index in busy)
    assert all(sub_ok["p50_ms"][index] is None for index in range(21) if index not in busy)


async def test_a_longer_step_adds_the_minutes_up(stored_mix, admin_token):
    records, _, window, base_url = stored_mix

    answer = await fetch(base_url, admin_token, "/v1/stats/traffic", window | {"step": "600", "by": "tenant"})

    totals = {series["key"]: sum(series["attempts"]) for series in answer["series"]}
    assert totals == {tenant: sum(r["tenant"] == tenant and is_attempt(r) for r in records)
                      for tenant in ("acme", "globex")}
    assert len(answer["times"]) in (2, 3)  # ten-minute steps over twenty minutes, aligned to the clock


async def test_all_time_stats_keep_their_shape(stored_mix, admin_token):
    records, _, _, base_url = stored_mix

    answer = await asyncio.to_thread(partial(client.fetch_stats, base_url, token=admin_token))
    rows = {row["subscription_id"]: row for row in answer}

    expected = expected_summary(records, lambda r: r["subscription_id"])
    assert set(rows) == set(expected)
    for name, row in rows.items():
        want = expected[name]
        counts = (row["attempts"], row["delivered"], row["failed"], row["dead_lettered"])
        assert counts == (want["attempts"], want["succeeded"], want["failed"], want["dead_lettered"])
        assert (row["p50_ms"], row["p99_ms"]) == (pytest.approx(want["p50_ms"]), pytest.approx(want["p99_ms"]))
        assert row["last_attempt_at"] == want["last_attempt_at"]


async def test_last_attempts_of_a_subscription_newest_first(stored_mix, admin_token):
    records, _, _, base_url = stored_mix
    sub_ok = [r for r in records if r["subscription_id"] == "sub_ok" and is_attempt(r)]  # requests only
    newest_first = sorted(sub_ok, key=lambda r: r["started_at"], reverse=True)

    default = await fetch(base_url, admin_token, "/v1/attempts", {"subscription_id": "sub_ok"})
    three = await fetch(base_url, admin_token, "/v1/attempts", {"subscription_id": "sub_slow", "limit": "3"})

    assert [a["attempt_id"] for a in default["attempts"]] == [r["attempt_id"] for r in newest_first[:10]]
    assert [a["outcome"] for a in three["attempts"]] == ["connection_error", "timeout", "timeout"]
    assert default["attempts"][0]["response_body"] == "ok" and default["attempts"][0]["status_code"] == 200


async def test_error_log_and_reasons(stored_mix, admin_token):
    records, _, window, base_url = stored_mix
    failures = [r for r in records if r["outcome"] != "success"]  # dead-letterings included

    answer = await fetch(base_url, admin_token, "/v1/errors", window)

    assert sorted(e["attempt_id"] for e in answer["errors"]) == sorted(r["attempt_id"] for r in failures)
    reasons = {(r["outcome"], r["status_code"], r["reason"]): (r["attempts"], r["events"]) for r in answer["reasons"]}
    assert reasons == {
        ("http_error", 404, "HTTP 404"): (8, 4), ("http_error", 429, "HTTP 429"): (1, 1),
        ("http_error", 500, "HTTP 500"): (3, 3), ("http_error", 503, "HTTP 503"): (4, 4),
        ("unknown", None, "unknown (test)"): (1, 1),
        ("timeout", None, "timeout (test)"): (3, 2), ("connection_error", None, "connection_error (test)"): (1, 1),
        ("dead_lettered", None, "retry schedule spent after 2 attempts: HTTP 404"): (4, 4),
        ("dead_lettered", None, "retry schedule spent after 3 attempts: connection_error (test)"): (1, 1),
        ("dead_lettered", None, "request could not be built: template: no data.user"): (1, 1),
    }
    only_slow = await fetch(base_url, admin_token, "/v1/errors",
                            window | {"subscription_id": "sub_slow", "limit": "2"})
    assert [e["outcome"] for e in only_slow["errors"]] == ["dead_lettered", "connection_error"]
    assert only_slow["errors"][0]["status_code"] is None and only_slow["errors"][0]["latency_ms"] == 0


async def test_routing_decisions_by_reason(stored_mix, admin_token):
    _, decisions, window, base_url = stored_mix

    answer = await fetch(base_url, admin_token, "/v1/stats/routing", window | {"step": "60"})

    totals = {(row["outcome"], row["reason"]): (row["decisions"], row["routes"]) for row in answer["totals"]}
    assert totals == {("routed", ""): (10, 15), ("dropped", "no_match"): (3, 0), ("dropped", "paused"): (2, 0),
                      ("dropped", "filtered"): (1, 0), ("dropped", "invalid"): (1, 0)}
    series = {entry["key"]: sum(entry["decisions"]) for entry in answer["series"]}
    assert series == {"routed": 10, "no_match": 3, "paused": 2, "filtered": 1, "invalid": 1}
    assert sum(d["reason"] is not None for d in decisions) == 7


async def test_bad_parameters_are_refused_naming_the_field(stored_mix, admin_token):
    *_, base_url = stored_mix

    for query, field in (({"by": "colour"}, "by"), ({"step": "90"}, "step"), ({"from": "yesterday"}, "from"),
                         ({"limit": "0"}, "limit")):
        with pytest.raises(Exception, match=f"422: {field}"):
            await fetch(base_url, admin_token, "/v1/stats/summary" if field != "limit" else "/v1/attempts", query)
