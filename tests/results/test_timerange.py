"""Time ranges of the statistics queries: parsing, automatic steps, alignment, refusals."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.errors import InvalidInput
from pipeline.results.timerange import MAX_POINTS, clickhouse_time, parse_time_range

NOW = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=timezone.utc)


def test_the_default_is_the_last_hour_in_minutes_aligned_to_the_minute():
    time_range = parse_time_range({}, NOW)

    assert time_range.step_s == 60
    assert time_range.start == datetime(2026, 3, 14, 14, 9, tzinfo=timezone.utc)
    assert time_range.end == NOW
    assert len(time_range.times) == 61 and time_range.times[-1] == datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("-15m", NOW - timedelta(minutes=15)), ("2h", NOW - timedelta(hours=2)), ("7d", NOW - timedelta(days=7)),
    ("2026-03-14T12:00:00", datetime(2026, 3, 14, 12, tzinfo=timezone.utc)),
    ("2026-03-14T13:00:00+01:00", datetime(2026, 3, 14, 12, tzinfo=timezone.utc)),
    ("2026-03-14T12:00:00Z", datetime(2026, 3, 14, 12, tzinfo=timezone.utc)),
])
def test_from_accepts_ages_and_iso_times_naive_meaning_utc(text, expected):
    time_range = parse_time_range({"from": text, "step": "3600"}, NOW)

    assert time_range.start == expected.replace(minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("span, step_s", [(timedelta(hours=1), 60), (timedelta(hours=6), 300),
                                          (timedelta(days=1), 900), (timedelta(days=7), 7200),
                                          (timedelta(days=90), 86400)])
def test_the_automatic_step_keeps_charts_near_120_points(span, step_s):
    time_range = parse_time_range({"from": (NOW - span).isoformat()}, NOW)

    assert time_range.step_s == step_s
    assert int(time_range.start.timestamp()) % step_s == 0  # the buckets ClickHouse's toStartOfInterval makes


def test_parameters_are_whole_utc_seconds():
    parameters = parse_time_range({"from": "2026-03-14T16:00:00+01:00", "to": "now", "step": "300"}, NOW).parameters()

    assert parameters == {"from": "2026-03-14 15:00:00", "to": "2026-03-14 15:09:26", "step_s": 300}
    assert clickhouse_time(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == "2026-01-01 00:00:00"


@pytest.mark.parametrize("query, field", [
    ({"from": "yesterday"}, "from"), ({"to": "soon"}, "to"), ({"from": "now"}, "from"),
    ({"step": "90"}, "step"), ({"step": "30"}, "step"), ({"step": "ten"}, "step"),
    ({"from": "30d", "step": "60"}, "step"),
])
def test_refusals_name_the_field(query, field):
    with pytest.raises(InvalidInput) as refused:
        parse_time_range(query, NOW)

    assert refused.value.field == field
    if query.get("from") == "30d":
        assert str(MAX_POINTS) in refused.value.problem
