from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from pipeline.dispatcher.status import Verdict, judge, retry_after


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_only_2xx_succeeds(status: int) -> None:
    assert judge(status, {}, 3600).succeeded


@pytest.mark.parametrize("status", [None, 199, 300, 301, 302, 307, 400, 401, 404, 409, 500, 501])
def test_other_answers_retry_on_schedule(status: int | None) -> None:
    verdict = judge(status, {"retry-after": "7"}, 3600)
    assert not verdict.succeeded and not verdict.disable and verdict.retry_after_s is None


def test_410_disables() -> None:
    assert judge(410, {}, 3600).disable


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_slow_down_answers_honour_retry_after_within_bounds(status: int) -> None:
    assert judge(status, {"retry-after": "30"}, 3600).retry_after_s == 30
    assert judge(status, {"retry-after": "999999"}, 3600).retry_after_s == 3600
    assert judge(status, {}, 3600).retry_after_s is None


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after("Thu, 01 Jan 2026 12:01:30 GMT", now) == 90
    assert retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0
    assert retry_after("soon", now) is None


def test_retry_after_dates_with_a_numeric_zone_are_read_in_that_zone() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after("Thu, 01 Jan 2026 13:01:30 +0100", now) == 90  # 12:01:30 UTC
    assert retry_after("Thu, 01 Jan 2026 07:01:30 -0500", now) == 90
    assert retry_after("Thu, 01 Jan 2026 12:01:30 +0000", now) == 90


@pytest.mark.parametrize("value", ["Thu, 01 Jan 2026 12:01:30 -0000", "Thu, 01 Jan 2026 12:01:30"])
def test_retry_after_dates_without_a_known_zone_are_utc(value: str) -> None:
    # RFC 5322: -0000 says the zone is unknown; Python reads such a date (or one with no zone) as naive.
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after(value, now) == 90


def test_judge_reads_a_minus_zero_zone_date_without_raising() -> None:
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(minutes=10)).replace("+0000", "-0000")
    assert soon.endswith("-0000")
    wait = judge(503, {"retry-after": soon}, 3600).retry_after_s
    assert wait is not None and 500 < wait <= 600


def test_retry_after_dates_count_from_the_clock_when_no_time_is_given() -> None:
    in_an_hour = format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)
    wait = retry_after(in_an_hour)
    assert wait is not None and 3500 < wait <= 3600


@pytest.mark.parametrize("value", ["", "   ", None, "1.5", "-5", "+30", "30s", "\u00b2", "\u0663", "\uff13"])
def test_retry_after_that_is_neither_delta_seconds_nor_a_date_is_ignored(value: str | None) -> None:
    # Only ASCII digits are delta-seconds; "²", Arabic-Indic and full-width digits pass str.isdigit().
    assert retry_after(value) is None
    assert judge(429, {} if value is None else {"retry-after": value}, 3600) == judge(429, {}, 3600)


def test_delta_seconds_may_be_padded_with_spaces() -> None:
    assert retry_after("  42 ") == 42


def test_slow_down_verdicts_neither_succeed_nor_disable() -> None:
    verdict = judge(503, {"retry-after": "5"}, 3600)
    assert (verdict.succeeded, verdict.disable, verdict.retry_after_s) == (False, False, 5)
    assert judge(410, {"retry-after": "5"}, 3600) == Verdict(disable=True)
    assert judge(204, {"retry-after": "5"}, 3600) == Verdict(succeeded=True)
