import random

import pytest

from pipeline.dispatcher.retry import RetrySchedule


def test_delays_follow_the_schedule_within_jitter() -> None:
    schedule = RetrySchedule(delays_s=(0.0, 5.0, 300.0), jitter=0.2)
    rng = random.Random(7)
    assert schedule.delay_before(1, rng) == 0.0
    assert 4.0 <= schedule.delay_before(2, rng) <= 6.0
    assert 240.0 <= schedule.delay_before(3, rng) <= 360.0


class Edge:
    """A random source that always draws one end of the range it is asked for, and records the ranges."""

    def __init__(self, end: int):
        self.end = end
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        self.ranges.append((low, high))
        return (low, high)[self.end]


def test_jitter_spreads_both_ways_by_the_jitter_fraction() -> None:
    schedule = RetrySchedule(delays_s=(10.0, 100.0), jitter=0.25)
    low, high = Edge(0), Edge(1)
    assert schedule.delay_before(2, low) == 75.0
    assert schedule.delay_before(2, high) == 125.0
    assert low.ranges == high.ranges == [(-0.25, 0.25)]


def test_jitter_is_drawn_fresh_and_falls_on_both_sides() -> None:
    schedule = RetrySchedule(delays_s=(100.0,))
    delays = [schedule.delay_before(1, random.Random(seed)) for seed in range(200)]
    assert min(delays) < 90.0 and max(delays) > 110.0
    assert all(80.0 <= delay <= 120.0 for delay in delays)


def test_the_default_jitter_is_a_fifth_drawn_from_the_random_module(monkeypatch: pytest.MonkeyPatch) -> None:
    high = Edge(1)
    monkeypatch.setattr(random, "uniform", high.uniform)
    assert RetrySchedule(delays_s=(100.0,)).delay_before(1) == 120.0
    assert high.ranges == [(-0.2, 0.2)]


def test_attempts_are_counted_from_one() -> None:
    schedule = RetrySchedule(delays_s=(1.0, 2.0, 3.0), jitter=0.0)
    assert [schedule.delay_before(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, None]
    assert schedule.delay_before(3, endless=True) == 3.0


def test_a_spent_schedule_says_none() -> None:
    assert RetrySchedule(delays_s=(0.0, 1.0)).delay_before(3) is None


def test_an_endless_schedule_repeats_its_last_delay() -> None:
    schedule = RetrySchedule(delays_s=(0.0, 10.0), jitter=0.0)
    assert schedule.delay_before(7, endless=True) == 10.0


def test_a_deferred_retry_waits_in_the_longest_tier_not_past_its_due_time() -> None:
    from pipeline.kafka.admin import RETRY_TIERS_S, retry_tier

    assert [retry_tier(remaining) for remaining in (0, 0.9, 1, 4.9, 5, 299, 9 * 3600, 10**6)] == \
        [None, None, 1, 1, 5, 60, 18000, 86400]
    for wait in (0.5, 4, 12.3, 299, 1799, 9 * 3600 + 17.5, 14 * 3600 * 1.2, 86399):
        # A wait passes through tiers, each holding what is left, until less than the shortest remains.
        remaining, hops = wait, 0
        while (tier := retry_tier(remaining)) is not None:
            remaining, hops = remaining - tier, hops + 1
        assert 0 <= remaining < RETRY_TIERS_S[0] and hops <= 20, (wait, hops)  # at most 20 writes for any wait up to a day
