import asyncio
from datetime import datetime, timedelta, timezone

from pipeline.dispatcher.disabling import FailureStreaks
from pipeline.dispatcher.flow import Gate, Gates
from pipeline.subscriptions.model import Subscription


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


async def _spacing_of(gate: Gate, requests: int) -> float:
    """The loop time the requests took once the burst was spent; the loop's clock is faked."""
    loop = asyncio.get_running_loop()
    now = [0.0]
    real_call_at = loop.call_at
    loop.time = lambda: now[0]  # type: ignore[method-assign]

    def call_at(when: float, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        now[0] = max(now[0], when)  # jump straight to the next wake-up
        return real_call_at(0, callback, *args, **kwargs)

    loop.call_at = call_at  # type: ignore[method-assign]
    try:
        for _ in range(requests):
            async with gate.slot():
                pass
        return now[0]
    finally:
        del loop.time, loop.call_at


async def test_a_gate_below_one_request_per_second_spaces_requests_out() -> None:
    gate = Gate(rate_per_s=0.5, max_in_flight=None)
    assert gate._limiter is not None
    assert gate._limiter.max_rate / gate._limiter.time_period == 0.5
    assert gate._limiter.max_rate >= 1  # aiolimiter refuses to acquire more than max_rate
    elapsed = await asyncio.wait_for(_spacing_of(gate, 3), timeout=5)
    assert elapsed == 4.0  # the first at once, then one every 2 s


async def test_a_gate_of_a_hundred_per_second_allows_a_second_s_burst() -> None:
    gate = Gate(rate_per_s=100, max_in_flight=None)
    assert gate._limiter is not None
    assert gate._limiter.max_rate / gate._limiter.time_period == 100
    elapsed = await asyncio.wait_for(_spacing_of(gate, 150), timeout=5)
    assert 0.49 <= elapsed <= 0.51  # 100 at once, then 50 more at 100/s


async def test_a_hold_keeps_every_request_of_the_endpoint_back_until_it_ends() -> None:
    gates = Gates()
    subscription = Subscription(name="s", url="https://example.com/hook", event_types=["*"])
    gate = gates.for_subscription(subscription)
    loop = asyncio.get_running_loop()
    gates.hold(subscription.id, 0.3)
    gates.hold(subscription.id, 0.1)  # a shorter wait asked later does not cut the first one short
    started = loop.time()
    await asyncio.gather(*(_enter(gate) for _ in range(3)))
    assert loop.time() - started >= 0.3
    assert gates.held_until(subscription.id) is None  # over: nothing left to commit


def test_a_hold_learned_from_a_commit_outlives_the_gates_being_rebuilt() -> None:
    gates = Gates()
    gates.hold_until("sub_a", 4_000_000_000.0)
    assert gates.held_until("sub_a") == 4_000_000_000.0
    gates.hold_until("sub_a", 3_000_000_000.0)  # an earlier end never shortens a hold
    assert gates.held_until("sub_a") == 4_000_000_000.0
    gates.forget("sub_a")  # another dispatcher owns the endpoint now
    assert gates.held_until("sub_a") is None


def test_a_committed_streak_is_carried_on_and_the_longer_one_wins() -> None:
    streaks = FailureStreaks(timedelta(hours=1), min_failures=3)
    began = datetime(2026, 1, 1, tzinfo=timezone.utc)
    streaks.learn("s", began, 2)
    streaks.learn("s", began + timedelta(minutes=5), 1)  # a shorter streak from another partition
    assert streaks.of("s") == (began, 2)
    assert streaks.failed("s", began + timedelta(minutes=61))  # the third failure, an hour after the first


async def _enter(gate: Gate) -> None:
    async with gate.slot():
        pass
