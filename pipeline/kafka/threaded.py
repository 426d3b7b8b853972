"""A confluent-kafka consumer driven from asyncio.

librdkafka lets one call into a consumer run at a time (a call waits while a poll blocks), and it
runs rebalance callbacks inside poll. So every call here runs on one thread of the consumer's own,
in the order asked; the event loop stays free meanwhile, and a callback that needs the loop (to
finish deliveries before a shard is handed over) can wait for it from that thread.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer, Message

from pipeline.kafka.clients import LIBRDKAFKA_LOG, NO_NAGLE

T = TypeVar("T")
Observe = Callable[[str, float], None]  # a call's name, and the seconds it took on the consumer's thread


class ThreadedConsumer:
    def __init__(self, config: dict[str, Any], name: str, observe: Observe | None = None):
        """observe: told how long each call but take() took, once it is done. Most calls keep the
        GIL while they run (see pipeline.metrics.loop_lag), so their time is the process's too."""
        self._config = {"logger": LIBRDKAFKA_LOG, **NO_NAGLE, **config}
        self.raw = Consumer(self._config)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._observe = observe

    async def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs one of the consumer's methods (or a function of it) on the consumer's thread."""
        work = functools.partial(method, *args, **kwargs)
        if self._observe is not None:
            work = functools.partial(_timed, self._observe, getattr(method, "__name__", "call").strip("_"), work)
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def take(self, max_messages: int, timeout_s: float) -> list[Message]:
        """What has arrived, up to max_messages, waiting up to timeout_s for the first one only:
        librdkafka's consume() would wait the whole timeout to fill a batch. (It lets go of the
        GIL while it waits, and is not observed: its time is mostly waiting.)"""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._take, max_messages, timeout_s)

    def _take(self, max_messages: int, timeout_s: float) -> list[Message]:
        first = self.raw.poll(timeout_s)
        if first is None:
            return []
        return [first, *self.raw.consume(max_messages - 1, 0)] if max_messages > 1 else [first]

    async def renew(self) -> None:
        """A new consumer of the same settings in place of this one, with nothing assigned; the old
        one is closed on a thread of its own. librdkafka keeps every topic a consumer was ever
        assigned, and its threads go through all of them: see pipeline.dispatcher.consumer."""
        retiring = await self.call(self._replace)
        threading.Thread(target=retiring.close, name="retiring-consumer", daemon=True).start()

    def _replace(self) -> Consumer:
        retiring, self.raw = self.raw, Consumer(self._config)
        return retiring

    async def close(self) -> None:
        try:
            await self.call(self.raw.close)
        finally:
            self._thread.shutdown(wait=False)


def _timed(observe: Observe, name: str, work: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        return work()
    finally:
        observe(name, time.perf_counter() - started)


def in_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any]) -> Callable[..., None]:
    """A librdkafka callback that runs a coroutine function on the event loop and waits for it,
    from the consumer's thread: the rebalance it belongs to goes on only once it is done."""
    def run(*args: Any) -> None:
        asyncio.run_coroutine_threadsafe(callback(*args), loop).result()
    return run
