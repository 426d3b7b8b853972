"""Scripted webhook endpoints for statistics tests: each path answers its own way, and every
request is recorded with the answer it got, so stored statistics can be checked against it.

    /ok        204
    /notfound  404
    /flaky     500, then 503, then 200 (per event)
    /slow      the first request of each event is answered after `slow_s` (after the
               dispatcher gave up: a timeout), later ones at once with 204
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, defaultdict
from concurrent.futures import Future

from aiohttp import web

TIMEOUT = "timeout"


class ScriptedEndpoints:
    def __init__(self, slow_s: float):
        self.slow_s = slow_s
        self.answers: dict[str, list[tuple[str, str]]] = defaultdict(list)  # path -> (event id, status or TIMEOUT)
        self._tries: Counter = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="scripted-endpoints", daemon=True)
        self._runner: web.AppRunner | None = None

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {path: len(answers) for path, answers in self.answers.items()}

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        event_id = request.headers["webhook-id"]
        with self._lock:
            self._tries[(request.path, event_id)] += 1
            tries = self._tries[(request.path, event_id)]
        if request.path == "/slow" and tries == 1:
            self._record(request.path, event_id, TIMEOUT)
            await asyncio.sleep(self.slow_s)  # asynchronous: only this request is held up
            return web.Response(status=204)
        flaky = [500, 503, 200][min(tries, 3) - 1]
        status = {"/ok": 204, "/notfound": 404, "/flaky": flaky, "/slow": 204}[request.path]
        self._record(request.path, event_id, str(status))
        return web.Response(status=status)

    def _record(self, path: str, event_id: str, answer: str) -> None:
        with self._lock:
            self.answers[path].append((event_id, answer))

    def start(self) -> str:
        """Serves on 127.0.0.1 from a background thread; returns the base URL."""
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)

    async def _serve(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def stop(self) -> None:
        if self._runner is not None:
            future: Future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
