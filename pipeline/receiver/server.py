"""An endpoint that accepts any webhook, records it, and checks its signature when it knows the secret
(Standard Webhooks, or hex HMAC-SHA256 of the body in `x-signature`).

It runs in a thread with its own event loop (for synchronous tests), or on the caller's loop
(the CLI), and answers `GET /_received` and `GET /_count` so another process can see what
arrived. It answers 204 at once: a receiver that is slow to answer would measure itself, not
the sender.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from pipeline.signing import secret_key, verify, verify_body_signature

START_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 2.0
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ReceivedDelivery:
    path: str
    method: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    received_at: float  # time.time() on arrival
    signature_ok: bool | None  # None: no secret known for this path
    query: str = ""  # the raw query string, as GET deliveries carry their parameters

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"body": self.body.decode("utf-8", "replace")}


def signature_verifies(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Standard Webhooks, or the `hmac-sha256` scheme when the request carries `x-signature`."""
    if "x-signature" in headers:
        return verify_body_signature(secret, headers, body)
    return verify(secret, headers, body)


class Receiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, secret: str | None = None, *,
                 secrets: Mapping[str, str] | None = None,
                 on_delivery: Callable[[ReceivedDelivery], None] | None = None, keep: bool = True,
                 respond: Callable[[ReceivedDelivery], Any] | None = None):
        """`secret` verifies every path without its own entry in `secrets` (path -> secret).

        `keep=False` only counts deliveries: a long-running receiver need not hold every body.
        """
        for known in ([secret] if secret else []) + list((secrets or {}).values()):
            secret_key(known)  # a malformed secret fails here, not as a 500 per request
        self.host = host
        self.port = port
        self.secret = secret
        self.on_delivery = on_delivery
        self.respond = respond  # the status (and headers) to answer with: tests play failing endpoints
        self.keep = keep
        self._secrets = dict(secrets or {})
        self._deliveries: list[ReceivedDelivery] = []
        self._count = 0
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def deliveries(self) -> list[ReceivedDelivery]:
        """A copy, safe to read from any thread while deliveries keep arriving."""
        with self._lock:
            return list(self._deliveries)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def by_path(self, path: str) -> list[ReceivedDelivery]:
        return [delivery for delivery in self.deliveries if delivery.path == path]

    def set_secret(self, path: str, secret: str) -> None:
        """Verifies later deliveries to `path` with `secret` (e.g. one generated after start)."""
        secret_key(secret)
        with self._lock:
            self._secrets[path] = secret

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/_received", self._received_view)
        app.router.add_get("/_count", self._count_view)
        app.router.add_route("*", "/{tail:.*}", self._record)
        return app

    async def serve(self) -> str:
        """Starts serving on the running loop; returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]  # the port the system chose for port 0
        return self.base_url

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> str:
        """Serves from a background thread; returns the base URL once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError("this receiver is already running")
        ready: Future[str] = Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_thread, args=(ready,), name="receiver", daemon=True)
        self._thread.start()
        try:
            return ready.result(timeout=START_TIMEOUT_S)
        except BaseException:
            self._thread.join(START_TIMEOUT_S)
            self._thread = self._loop = None
            raise

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.shutdown(), self._loop).result(START_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT_S)
        self._thread = self._loop = None

    def _run_thread(self, ready: Future[str]) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            ready.set_result(loop.run_until_complete(self.serve()))
        except BaseException as exc:  # handed to start(), which raises it in the caller's thread
            ready.set_exception(exc)
        else:
            loop.run_forever()
        finally:
            loop.close()

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        with self._lock:
            secret = self._secrets.get(request.path, self.secret)
        delivery = ReceivedDelivery(
            path=request.path, method=request.method, headers=headers, body=body, received_at=time.time(),
            query=request.query_string,
            signature_ok=signature_verifies(secret, headers, body) if secret else None,
        )
        with self._lock:
            self._count += 1
            if self.keep:
                self._deliveries.append(delivery)
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        answer = self.respond(delivery) if self.respond else 204
        if inspect.isawaitable(answer):  # a test endpoint that takes its time without blocking the rest
            answer = await answer
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, headers=headers)

    async def _received_view(self, request: web.Request) -> web.Response:
        """All deliveries, or those to one path with `?path=/hooks/a`."""
        path = request.query.get("path")
        deliveries = self.by_path(path) if path else self.deliveries
        return web.json_response([delivery.as_json() for delivery in deliveries])

    async def _count_view(self, _: web.Request) -> web.Response:
        return web.json_response({"count": self.count})
