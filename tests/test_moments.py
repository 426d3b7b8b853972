from datetime import datetime, timezone

import pytest

from pipeline.errors import InvalidInput
from pipeline.replay.moments import parse_moment

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def test_ages_and_iso_times() -> None:
    assert parse_moment("90m", "since", NOW) == datetime(2026, 11, 22, 10, 30, tzinfo=timezone.utc)
    assert parse_moment("2d", "since", NOW) == datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
    assert parse_moment("2026-11-22T08:00:00Z", "since") == datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
    assert parse_moment("2026-11-22T08:00:00", "since").tzinfo == timezone.utc


def test_nonsense_names_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_moment("yesterday-ish", "--since")
    assert caught.value.field == "--since"
