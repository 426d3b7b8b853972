"""An endpoint that accepts any webhook, records it, and checks its signature when it knows the secret.

It runs in a thread of its own (for synchronous tests) or in the foreground (the CLI), and
answers `GET /_received` and `GET /_count` so another process can see what arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from aiohttp import web

from pipeline.signing import verify


@dataclass(frozen=True)
class ReceivedDelivery:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    signature_ok: bool | None

    def as_json(self) -> dict:
        return asdict(self) | {"body": self.body.decode("utf-8", "replace")}


class Receiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, secret: str | None = None,
                 on_delivery: Callable[[ReceivedDelivery], None] | None = None, keep: bool = True):
        self.host = host
        self.port = port
        self.secret = secret
        self.on_delivery = on_delivery
        self.keep = keep  # a long-running CLI receiver need not hold every body in memory
        self._deliveries: list[ReceivedDelivery] = []
        self._count = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def deliveries(self) -> list[ReceivedDelivery]:
        with self._lock:
            return list(self._deliveries)

    def by_path(self, path: str) -> list[ReceivedDelivery]:
        return [delivery for delivery in self.deliveries if delivery.path == path]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/_received", self._received)
        app.router.add_get("/_count", self._count_view)
        app.router.add_route("*", "/{tail:.*}", self._record)
        return app

    async def serve(self) -> str:
        """Starts serving on the running loop; returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the port chosen for port 0
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Serves from a background thread; returns the base URL once it accepts requests."""
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        base_url: list[str] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            base_url.append(self._loop.run_until_complete(self.serve()))
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="receiver", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the receiver did not start within 10 s")
        return base_url[0]

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        delivery = ReceivedDelivery(
            path=request.path, method=request.method, headers=headers, body=body, received_at=time.time(),
            signature_ok=verify(self.secret, headers, body) if self.secret else None,
        )
        with self._lock:
            self._count += 1
            if self.keep:
                self._deliveries.append(delivery)
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        return web.Response(status=204)

    async def _received(self, _: web.Request) -> web.Response:
        return web.json_response([delivery.as_json() for delivery in self.deliveries])

    async def _count_view(self, _: web.Request) -> web.Response:
        return web.json_response({"count": self._count})
