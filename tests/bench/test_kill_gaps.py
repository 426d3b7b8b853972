"""bench-scale's kill phase: each sampled endpoint's longest gap after the kill, by its owner."""

from __future__ import annotations

from bench.scale import sampled_gaps

KILLED_AT, END = 100.0, 130.0


def ticks(times: list[float]) -> list[tuple[float, float, dict]]:
    return [(at, at, {"seq": seq}) for seq, at in enumerate(times)]


def received(by_endpoint: dict[int, list[float]]) -> dict:
    return {"/steady": [(KILLED_AT + 1, KILLED_AT + 0.99, {})]} | {f"/e/{n}": ticks(times) for n, times in by_endpoint.items()}


def test_a_survivors_endpoint_that_waited_counts_as_the_survivors() -> None:
    every_second = [KILLED_AT + s for s in range(1, 30)]
    late = [KILLED_AT + 12 + s for s in range(18)]
    found = sampled_gaps(received({1: late, 2: every_second, 3: late}), [1, 2, 3], KILLED_AT, END, 0, killed={1})
    assert found["owners_known"]
    assert found["by_owner"]["killed"] == {"endpoints": 1, "waited": 1, "longest": 12.0}
    assert found["by_owner"]["survivor"] == {"endpoints": 2, "waited": 1, "longest": 12.0}


def test_without_owners_the_waits_are_told_apart_by_gap() -> None:
    every_second = [KILLED_AT + s for s in range(1, 30)]
    late = [KILLED_AT + 12 + s for s in range(18)]
    found = sampled_gaps(received({1: late, 2: every_second}), [1, 2], KILLED_AT, END, 0, killed=None)
    assert not found["owners_known"]
    assert found["by_owner"]["killed"]["endpoints"] == 1 and found["by_owner"]["survivor"]["longest"] == 1.0
