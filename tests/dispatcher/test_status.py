from datetime import datetime, timezone

import pytest

from pipeline.dispatcher.status import judge, retry_after


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_only_2xx_succeeds(status: int) -> None:
    assert judge(status, {}, 3600).succeeded


@pytest.mark.parametrize("status", [None, 301, 302, 307, 400, 401, 404, 409, 500, 501])
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
