"""The messages of one partition in flight: one lane per ordering key, commits that never skip.

A lane delivers its key's messages one after another, so a retried message blocks only
its own key. The committable offset is just past the longest run of finished messages
from the start, so a crash redelivers every unfinished message instead of losing it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

UNEXPECTED_ERROR_PAUSE_S = 1.0
Handler = Callable[[Any], Awaitable[None]]


class PartitionWork:
    def __init__(self, handle: Handler):
        self._handle = handle
        self._lanes: dict[bytes | int, deque[Any]] = {}
        self._lane_tasks: dict[bytes | int, asyncio.Task[None]] = {}
        self._offsets: deque[int] = deque()
        self._finished: set[int] = set()
        self._next_commit: int | None = None
        self._closing = False

    @property
    def in_flight(self) -> int:
        return len(self._offsets)

    def submit(self, record: Any) -> None:
        # Messages without a key have no order to keep: each gets a lane of its own.
        key = record.key if record.key is not None else record.offset
        self._offsets.append(record.offset)
        lane = self._lanes.setdefault(key, deque())
        lane.append(record)
        if key not in self._lane_tasks:
            self._lane_tasks[key] = asyncio.create_task(self._run_lane(key, lane))

    def committable(self) -> int | None:
        """The offset to commit: every message before it is finished."""
        while self._offsets and self._offsets[0] in self._finished:
            offset = self._offsets.popleft()
            self._finished.discard(offset)
            self._next_commit = offset + 1
        return self._next_commit

    async def close(self, grace_s: float) -> None:
        """Lets in-flight messages finish for up to grace_s, then cancels the rest (they are redelivered)."""
        self._closing = True
        tasks = list(self._lane_tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run_lane(self, key: bytes | int, lane: deque[Any]) -> None:
        try:
            while lane and not self._closing:
                record = lane[0]
                try:
                    await self._handle(record)
                except Exception:
                    # A bug must not skip a message: keep it at the head and try again.
                    log.exception("delivery of offset %d failed unexpectedly; retrying", record.offset)
                    await asyncio.sleep(UNEXPECTED_ERROR_PAUSE_S)
                    continue
                lane.popleft()
                self._finished.add(record.offset)
        finally:
            del self._lane_tasks[key]
            if not lane:
                del self._lanes[key]
