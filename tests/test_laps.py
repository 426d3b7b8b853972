"""Laps: each step's time, and the total, in the log line of a slow operation."""

from __future__ import annotations

import pytest

from pipeline import laps as laps_module
from pipeline.laps import Laps


def test_each_step_is_timed_from_the_end_of_the_one_before(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([10.0, 10.5, 12.5])
    monkeypatch.setattr(laps_module.time, "monotonic", lambda: next(clock))
    laps = Laps()
    laps.lap("topics")
    laps.lap("assigning", note="0.1 of it the calls")
    assert laps.total_s == 2.5
    assert str(laps) == "2.5 s (topics 0.5, assigning 2.0 (0.1 of it the calls))"
