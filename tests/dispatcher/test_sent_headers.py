"""What goes on the wire is the request's headers and nothing the client library adds by itself:
a header a subscription sets to null is not sent, with either client. A raw TCP receiver records
the header lines exactly as they arrived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipeline.dispatcher.http import make_transport
from pipeline.dispatcher.request import build_request
from pipeline.models import Event
from pipeline.subscriptions.model import Subscription

CONNECTION_HEADERS = {"host", "content-length"}
SIGNATURE_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature"}


class RawReceiver:
    """Answers 204 to each request and keeps its header lines, unparsed by any HTTP library."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")[1:-2]
                self.requests.append(lines)
                await reader.readexactly(int(dict(self.parsed(lines)).get("content-length", "0")))
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client closed the connection
        finally:
            writer.close()

    @staticmethod
    def parsed(lines: list[str]) -> list[tuple[str, str]]:
        return [(name.lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines)]

    def last_names(self) -> list[str]:
        return [name for name, _ in self.parsed(self.requests[-1])]


@pytest.fixture
async def raw_receiver() -> AsyncIterator[tuple[RawReceiver, int]]:
    receiver = RawReceiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    yield receiver, server.sockets[0].getsockname()[1]
    server.close()


async def sent(client: str, port: int, receiver: RawReceiver, **fields) -> dict[str, str]:
    subscription = Subscription(name="s", url=f"http://127.0.0.1:{port}/hook", event_types=["*"], **fields)
    request = build_request(subscription, [Event(type="t")], "evt_1", 1_700_000_000)
    transport = make_transport(client, allowed_networks=["127.0.0.0/8"], allow_http=True)
    try:
        response = await transport.send(request.method, request.url, request.headers, request.body, 5)
    finally:
        await transport.close()
    assert response.status == 204
    names = receiver.last_names()
    assert len(names) == len(set(names)), names  # nothing sent twice
    return dict(receiver.parsed(receiver.requests[-1]))


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
async def test_null_headers_are_not_sent_and_the_client_adds_none_of_its_own(client: str, raw_receiver) -> None:
    receiver, port = raw_receiver
    headers = await sent(client, port, receiver, headers={"content-type": None, "User-Agent": None, "x-team": "a"})
    assert set(headers) == CONNECTION_HEADERS | SIGNATURE_HEADERS | {"x-team"}


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
async def test_the_pipelines_defaults_are_sent_once_and_can_be_replaced(client: str, raw_receiver) -> None:
    receiver, port = raw_receiver
    defaults = await sent(client, port, receiver)
    assert set(defaults) == CONNECTION_HEADERS | SIGNATURE_HEADERS | {"content-type", "user-agent"}
    assert defaults["content-type"] == "application/json" and defaults["user-agent"].startswith("webhook-pipeline/")
    replaced = await sent(client, port, receiver, headers={"User-Agent": "acme-hooks/2", "Accept": "*/*"})
    assert (replaced["user-agent"], replaced["accept"]) == ("acme-hooks/2", "*/*")


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
async def test_a_get_without_a_body_sends_no_content_type(client: str, raw_receiver) -> None:
    receiver, port = raw_receiver
    headers = await sent(client, port, receiver, method="GET", template={"a": "{{ id }}"})
    assert "content-type" not in headers and "user-agent" in headers
