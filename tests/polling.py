"""Waiting for a condition with a deadline, never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_until(probe: Callable[[], T], *, timeout_s: float = 60.0, interval_s: float = 0.2, what: str = "condition") -> T:
    """Calls probe until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last value: {last!r}")


async def until(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    """The same inside a test's event loop, for conditions other tasks on it bring about."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout_s)


def answers(url: str) -> bool:
    """A probe for wait_until: the URL answers 200 (a service that is up)."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
