import asyncio
from datetime import datetime, timedelta, timezone

from pipeline.dispatcher.disabling import FailureStreaks
from pipeline.dispatcher.flow import Gate


def test_a_streak_disables_only_after_the_window_and_the_count() -> None:
    streaks = FailureStreaks(timedelta(hours=1), min_failures=3)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert not streaks.failed("s", start)
    assert not streaks.failed("s", start + timedelta(minutes=30))
    assert not streaks.failed("s", start + timedelta(minutes=59))  # three failures, but not an hour yet
    assert streaks.failed("s", start + timedelta(minutes=61))
    streaks.succeeded("s")
    assert not streaks.failed("s", start + timedelta(hours=5))  # a success starts it over


async def test_a_gate_caps_requests_in_flight() -> None:
    gate = Gate(rate_per_s=None, max_in_flight=2)
    inside, most = 0, 0

    async def request() -> None:
        nonlocal inside, most
        async with gate.slot():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(request() for _ in range(10)))
    assert most == 2
