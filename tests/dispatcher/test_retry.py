import random

from pipeline.dispatcher.retry import RetrySchedule


def test_delays_follow_the_schedule_within_jitter() -> None:
    schedule = RetrySchedule(delays_s=(0.0, 5.0, 300.0), jitter=0.2)
    rng = random.Random(7)
    assert schedule.delay_before(1, rng) == 0.0
    assert 4.0 <= schedule.delay_before(2, rng) <= 6.0
    assert 240.0 <= schedule.delay_before(3, rng) <= 360.0


def test_a_spent_schedule_says_none() -> None:
    assert RetrySchedule(delays_s=(0.0, 1.0)).delay_before(3) is None


def test_an_endless_schedule_repeats_its_last_delay() -> None:
    schedule = RetrySchedule(delays_s=(0.0, 10.0), jitter=0.0)
    assert schedule.delay_before(7, endless=True) == 10.0
