"""The event loop every asyncio process runs on: uvloop where it is installed.

uvloop makes the HTTP client and the Kafka clients' Python side markedly cheaper per
message (DESIGN-NOTES: aiohttp about 25% faster); the standard loop is the fallback.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def collect_garbage_rarely() -> None:
    """A stage holds a long-lived object per subscription and per endpoint partition (hundreds of
    thousands with ten thousand endpoints), and Python's default collector walks all of them every
    few seconds of steady allocation: a third of a dispatcher's CPU. Our objects form few cycles,
    so collections come a hundred times less often, and what exists at start-up is left out of them."""
    gc.set_threshold(100_000, 50, 50)
    gc.freeze()


def settled() -> None:
    """What a stage loaded at start (the subscriptions table, its endpoints) stays: leave it out
    of every later collection."""
    gc.freeze()


def use_fastest_loop() -> None:
    """For code that creates its own loop (faust's worker, uvicorn)."""
    collect_garbage_rarely()
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(main: Coroutine[Any, Any, T]) -> T:
    use_fastest_loop()
    return asyncio.run(main)
