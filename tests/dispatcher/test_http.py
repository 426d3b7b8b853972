"""Both HTTP transports behave alike against a real local server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from pipeline.dispatcher.http import DeliveryConnectionError, DeliveryTimeout, make_transport

TRANSPORTS = ["aiohttp", "httpx"]


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(status=200, body=b"hello " + await request.read())

    async def redirect(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/ok"})

    async def big(_: web.Request) -> web.Response:
        return web.Response(status=200, body=b"z" * 200_000)

    async def hang(_: web.Request) -> web.Response:
        await never.wait()
        return web.Response(status=200)

    never = asyncio.Event()
    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/big", big)
    app.router.add_post("/hang", hang)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # do not wait for the hanging handler
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_statuses_bodies_and_redirects(server: str, name: str) -> None:
    transport = make_transport(name)
    try:
        response = await transport.send("POST", f"{server}/ok", {"content-type": "text/plain"}, b"there", 5)
        assert (response.status, response.body) == (200, b"hello there")
        redirected = await transport.send("POST", f"{server}/redirect", {}, b"", 5)
        assert redirected.status == 302  # not followed
        big = await transport.send("POST", f"{server}/big", {}, b"", 5)
        assert len(big.body) == 64 * 1024
    finally:
        await transport.close()


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_a_hanging_endpoint_times_out(server: str, name: str) -> None:
    transport = make_transport(name)
    try:
        with pytest.raises(DeliveryTimeout):
            await transport.send("POST", f"{server}/hang", {}, b"", 0.3)
    finally:
        await transport.close()


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_a_closed_port_is_a_connection_error(name: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    transport = make_transport(name)
    try:
        with pytest.raises(DeliveryConnectionError):
            await transport.send("POST", f"http://127.0.0.1:{closed_port}/", {}, b"", 5)
    finally:
        await transport.close()
