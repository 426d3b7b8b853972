"""Both HTTP transports behave alike against a real local server on 127.0.0.1.

The SSRF guard stays on: every transport here allow-lists loopback and plain http explicitly.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from pipeline.dispatcher.http import (
    RESPONSE_BODY_CAP,
    ClientPool,
    DeliveryConnectionError,
    DeliveryError,
    DeliveryRefused,
    DeliveryTimeout,
    DeliveryTLSError,
    HttpTransport,
    make_transport,
)
from pipeline.errors import PipelineError

TRANSPORTS = ["aiohttp", "httpx"]
SHORT_TIMEOUT_S = 0.3
LOCAL = {"allowed_networks": ["127.0.0.0/8"], "allow_http": True}


class EndpointServer:
    """Handlers for each behaviour under test; `release` frees the ones that hang."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.target_hits = 0
        self.hanging = 0
        self.hang_counted = asyncio.Condition()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/echo", self.echo)
        app.router.add_post("/target", self.target)
        app.router.add_post("/redirect", self.redirect)
        app.router.add_post("/big", self.big)
        app.router.add_post("/big-in-pieces", self.big_in_pieces)
        app.router.add_post("/hang", self.hang)
        app.router.add_post("/trickle", self.trickle)
        return app

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(status=201, body=b"got " + body,
                            headers={"Retry-After": "7", "X-Seen-Signature": request.headers["webhook-signature"]})

    async def target(self, _: web.Request) -> web.Response:
        self.target_hits += 1
        return web.Response(status=200)

    async def redirect(self, _: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/target"})

    async def big(self, _: web.Request) -> web.Response:
        return web.Response(status=200, body=b"z" * (RESPONSE_BODY_CAP * 3))

    async def big_in_pieces(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"a" * 1024)
        await asyncio.sleep(0.05)  # a gap, so the first read sees only the first piece
        await response.write(b"b" * (RESPONSE_BODY_CAP * 2))
        return response

    async def hang(self, _: web.Request) -> web.Response:
        async with self.hang_counted:
            self.hanging += 1
            self.hang_counted.notify_all()
        await self.release.wait()
        return web.Response(status=200)

    async def wait_hanging(self, count: int) -> None:
        async with self.hang_counted:
            await asyncio.wait_for(self.hang_counted.wait_for(lambda: self.hanging >= count), 5)

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        # Each byte arrives well within the timeout; the whole body never does.
        response = web.StreamResponse()
        await response.prepare(request)
        while not self.release.is_set():
            await response.write(b".")
            await asyncio.sleep(0.05)
        return response


async def _serve() -> AsyncIterator[tuple[str, EndpointServer]]:
    server = EndpointServer()
    runner = web.AppRunner(server.app(), shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", server
    finally:
        server.release.set()
        await runner.cleanup()


@pytest_asyncio.fixture
async def endpoint() -> AsyncIterator[tuple[str, EndpointServer]]:
    async for served in _serve():
        yield served


@pytest_asyncio.fixture
async def other_endpoint() -> AsyncIterator[tuple[str, EndpointServer]]:
    async for served in _serve():
        yield served


@pytest_asyncio.fixture(params=TRANSPORTS)
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[HttpTransport]:
    made = make_transport(request.param, **LOCAL)
    try:
        yield made
    finally:
        await made.close()


@pytest.mark.asyncio
async def test_a_response_carries_status_body_and_lower_case_headers(endpoint, transport) -> None:
    url, _ = endpoint
    response = await transport.send("POST", f"{url}/echo", {"webhook-signature": "v1,abc"}, b"there", 5)
    assert (response.status, response.body) == (201, b"got there")
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-seen-signature"] == "v1,abc"


@pytest.mark.asyncio
async def test_a_redirect_is_returned_not_followed(endpoint, transport) -> None:
    url, server = endpoint
    response = await transport.send("POST", f"{url}/redirect", {}, b"{}", 5)
    assert response.status == 302
    assert response.headers["location"] == "/target"
    assert server.target_hits == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/big", "/big-in-pieces"])
async def test_a_body_over_the_cap_is_cut_at_the_cap(endpoint, transport, path: str) -> None:
    url, _ = endpoint
    response = await transport.send("POST", f"{url}{path}", {}, b"", 5)
    assert response.status == 200
    assert len(response.body) == RESPONSE_BODY_CAP
    # The cut connection is dropped, not handed to the next request half-read.
    assert (await transport.send("POST", f"{url}/echo", {"webhook-signature": "x"}, b"again", 5)).body == b"got again"


@pytest.mark.asyncio
async def test_a_hanging_endpoint_times_out(endpoint, transport) -> None:
    url, _ = endpoint
    started = time.monotonic()
    with pytest.raises(DeliveryTimeout):
        await transport.send("POST", f"{url}/hang", {}, b"", SHORT_TIMEOUT_S)
    assert time.monotonic() - started < SHORT_TIMEOUT_S + 2


@pytest.mark.asyncio
async def test_the_timeout_bounds_the_whole_exchange_not_each_read(endpoint, transport) -> None:
    url, _ = endpoint
    started = time.monotonic()
    with pytest.raises(DeliveryTimeout):
        await transport.send("POST", f"{url}/trickle", {}, b"", SHORT_TIMEOUT_S)
    assert time.monotonic() - started < SHORT_TIMEOUT_S + 2


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.asyncio
async def test_a_closed_port_is_a_connection_error(transport) -> None:
    with pytest.raises(DeliveryConnectionError):
        await transport.send("POST", f"http://127.0.0.1:{_closed_port()}/", {}, b"", 5)


@pytest.mark.asyncio
async def test_a_name_that_does_not_resolve_is_a_connection_error(transport) -> None:
    # .invalid never resolves (RFC 2606); the long timeout leaves room for a slow resolver.
    with pytest.raises(DeliveryConnectionError):
        await transport.send("POST", "http://no-such-host.invalid/", {}, b"", 10)


@pytest.mark.asyncio
async def test_a_connection_closed_without_an_answer_is_a_connection_error(transport) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()  # the request line arrived; leave without a word
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(DeliveryConnectionError):
            await transport.send("POST", f"http://127.0.0.1:{port}/", {}, b"{}", 5)
    finally:
        server.close()
        await server.wait_closed()


def test_delivery_errors_belong_to_the_project_tree() -> None:
    assert issubclass(DeliveryTimeout, DeliveryError)
    assert issubclass(DeliveryConnectionError, DeliveryError)
    assert issubclass(DeliveryTLSError, DeliveryConnectionError)
    assert issubclass(DeliveryRefused, DeliveryError)
    assert not issubclass(DeliveryRefused, DeliveryConnectionError)
    assert issubclass(DeliveryError, PipelineError)


def test_an_unknown_client_name_is_refused() -> None:
    with pytest.raises(ValueError, match="aiohttp or httpx"):
        make_transport("requests")  # type: ignore[arg-type]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_a_hanging_endpoint_takes_only_its_own_connections(endpoint, other_endpoint, name: str) -> None:
    (hung_url, hung), (healthy_url, _) = endpoint, other_endpoint
    transport = make_transport(name, 4, max_connections_per_host=2, **LOCAL)  # the positional form still works
    try:
        stuck = [asyncio.create_task(transport.send("POST", f"{hung_url}/hang", {}, b"", 10)) for _ in range(2)]
        await hung.wait_hanging(2)
        with pytest.raises(DeliveryTimeout):  # a third to the same endpoint waits for one of its two
            await transport.send("POST", f"{hung_url}/hang", {}, b"", SHORT_TIMEOUT_S)
        assert hung.hanging == 2
        response = await transport.send("POST", f"{healthy_url}/echo", {"webhook-signature": "s"}, b"ok", 5)
        assert response.body == b"got ok"
        hung.release.set()
        assert [(await task).status for task in stuck] == [200, 200]
    finally:
        await transport.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_the_global_cap_still_holds_across_endpoints(endpoint, other_endpoint, name: str) -> None:
    (hung_url, hung), (other_url, other) = endpoint, other_endpoint
    transport = make_transport(name, max_connections=2, max_connections_per_host=2, **LOCAL)
    try:
        stuck = [asyncio.create_task(transport.send("POST", f"{hung_url}/hang", {}, b"", 10)) for _ in range(2)]
        await hung.wait_hanging(2)
        with pytest.raises(DeliveryTimeout):
            await transport.send("POST", f"{other_url}/target", {}, b"", SHORT_TIMEOUT_S)
        assert other.target_hits == 0
        hung.release.set()
        await asyncio.gather(*stuck)
    finally:
        await transport.close()


class FakeClient:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.asyncio
async def test_the_client_pool_closes_the_least_recently_used_once_it_is_idle() -> None:
    pool = ClientPool(max_size=2)
    made: dict[str, FakeClient] = {}

    def maker(name: str):
        return lambda: made.setdefault(name, FakeClient(name))

    async with pool.lease("a", maker("a")):
        pass
    async with pool.lease("b", maker("b")) as b:
        async with pool.lease("a", maker("a")):  # "a" is now the most recently used
            async with pool.lease("c", maker("c")):
                assert made["b"].closed is False  # evicted while in use: closed when its lease ends
            assert len(pool) == 2
        assert b is made["b"] and not made["a"].closed
    assert made["b"].closed and not made["c"].closed
    await pool.close()
    assert made["a"].closed and made["c"].closed
