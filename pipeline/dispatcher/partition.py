"""The messages of one partition in flight: lanes that deliver in order, commits that never skip.

A lane delivers its messages one batch after another (a batch is one message unless the
subscription batches), so a retried message blocks only its own lane. Which lane a message
joins follows the subscription's ordering: one per key, one for the whole partition (strict,
or batching), or one per message (none). The committable offset is just past the longest run
of finished messages from the start, so a crash redelivers every unfinished message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

log = logging.getLogger(__name__)

UNEXPECTED_ERROR_PAUSE_S = 1.0
Handler = Callable[[list[Any]], Awaitable[None]]


@dataclass(frozen=True)
class LanePolicy:
    ordering: str = "per_key"  # strict, per_key or none
    batch_max_events: int = 1
    batch_max_wait_s: float = 0.0

    def lane_of(self, record: Any) -> bytes | int:
        if self.ordering == "strict" or self.batch_max_events > 1:
            return b""
        if self.ordering == "none" or record.key is None:
            return record.offset  # no order to keep: a lane of its own
        return record.key


class PartitionWork:
    def __init__(self, handle: Handler, policy: Callable[[], LanePolicy] = LanePolicy, start_offset: int | None = None):
        """start_offset: where the partition was committed before, so it can be committed again
        (and kept from expiring) before any message arrives."""
        self._handle = handle
        self._policy = policy
        self._lanes: dict[bytes | int, deque[Any]] = {}
        self._lane_tasks: dict[bytes | int, asyncio.Task[None]] = {}
        self._arrivals: dict[bytes | int, asyncio.Event] = {}
        self._offsets: deque[int] = deque()
        self._finished: set[int] = set()
        self._next_commit = start_offset if start_offset is not None and start_offset >= 0 else None
        self._closing = False

    @property
    def in_flight(self) -> int:
        """Lanes delivering now (a lane sends one batch at a time): messages queued behind a busy key
        do not count, so one key retrying never stops the others; `uncommitted` bounds those."""
        return len(self._lane_tasks)

    @property
    def unfinished(self) -> int:
        """Messages submitted and not finished, queued in a lane or being delivered."""
        return len(self._offsets) - len(self._finished)

    @property
    def uncommitted(self) -> int:
        """Messages from the oldest unfinished one on, finished or not: what a crash would redeliver."""
        return len(self._offsets)

    def submit(self, record: Any) -> None:
        key = self._policy().lane_of(record)
        self._offsets.append(record.offset)
        self._lanes.setdefault(key, deque()).append(record)
        self._arrivals.setdefault(key, asyncio.Event()).set()
        if key not in self._lane_tasks:
            self._lane_tasks[key] = asyncio.create_task(self._run_lane(key, self._lanes[key]))

    def committable(self) -> int | None:
        """The offset to commit: every message before it is finished. While the oldest message is
        unfinished, its own offset (so its retry progress can be committed beside it); None only
        before any message arrived."""
        while self._offsets and self._offsets[0] in self._finished:
            offset = self._offsets.popleft()
            self._finished.discard(offset)
            self._next_commit = offset + 1
        return self._offsets[0] if self._offsets else self._next_commit

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
                batch = await self._next_batch(key, lane)
                try:
                    await self._handle(batch)
                except Exception:
                    # A bug must not skip a message: keep the batch at the head and try again.
                    log.exception("delivery of offset %d failed unexpectedly; retrying", batch[0].offset)
                    await asyncio.sleep(UNEXPECTED_ERROR_PAUSE_S)
                    continue
                for _ in batch:
                    self._finished.add(lane.popleft().offset)
        finally:
            del self._lane_tasks[key]
            if not lane:
                del self._lanes[key]
                self._arrivals.pop(key, None)

    async def _next_batch(self, key: bytes | int, lane: deque[Any]) -> list[Any]:
        policy = self._policy()
        if policy.batch_max_events > 1 and policy.batch_max_wait_s > 0:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + policy.batch_max_wait_s
            arrivals = self._arrivals[key]
            while len(lane) < policy.batch_max_events and (left := deadline - loop.time()) > 0:
                arrivals.clear()
                try:
                    await asyncio.wait_for(arrivals.wait(), left)
                except asyncio.TimeoutError:
                    break
        return list(islice(lane, policy.batch_max_events))
