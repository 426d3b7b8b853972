"""The one seam between the dispatcher and an HTTP client library.

Two implementations behind one Protocol, so the benchmark can measure both and the faster
one is the default (aiohttp: see DESIGN-NOTES for httpx's pool overhead). Whichever library
sends the request:

- redirects are never followed (a 3xx is the endpoint's answer, and a failure);
- the timeout bounds the whole exchange, body included, not each socket operation;
- the response body is read only up to a cap, then the connection is dropped, not drained;
- response header names come back lower-case;
- no response at all comes out as one of these:

PipelineError
 └── DeliveryError              the request got no HTTP response
      ├── DeliveryTimeout          not complete within the timeout
      └── DeliveryConnectionError  refused, reset, closed early, DNS failure
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import httpx

from pipeline.errors import PipelineError

RESPONSE_BODY_CAP = 64 * 1024


class DeliveryError(PipelineError):
    """The request got no HTTP response."""


class DeliveryTimeout(DeliveryError):
    pass


class DeliveryConnectionError(DeliveryError):
    pass


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes  # at most the transport's body cap


class HttpTransport(Protocol):
    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                   timeout_s: float) -> HttpResponse: ...

    async def close(self) -> None: ...


class AiohttpTransport:
    def __init__(self, max_connections: int = 100, body_cap: int = RESPONSE_BODY_CAP):
        self.max_connections = max_connections
        self.body_cap = body_cap
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session binds to the loop running when it is created.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                   timeout_s: float) -> HttpResponse:
        try:
            async with self._client().request(
                method, url, headers=dict(headers), data=body, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                content = await _read_aiohttp_capped(response.content, self.body_cap)
                return HttpResponse(response.status, _lower_names(response.headers.items()), content)
        except asyncio.TimeoutError as exc:  # aiohttp's own timeout errors subclass it too
            raise DeliveryTimeout(f"no complete response within {timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise DeliveryConnectionError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_aiohttp_capped(content: aiohttp.StreamReader, cap: int) -> bytes:
    # read(n) returns whatever is buffered, possibly far less than n: loop until cap or EOF.
    received = bytearray()
    while len(received) < cap:
        chunk = await content.read(cap - len(received))
        if not chunk:
            break
        received += chunk
    return bytes(received)


class HttpxTransport:
    def __init__(self, max_connections: int = 100, body_cap: int = RESPONSE_BODY_CAP):
        self.body_cap = body_cap
        self._client = httpx.AsyncClient(follow_redirects=False,
                                          limits=httpx.Limits(max_connections=max_connections))

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                   timeout_s: float) -> HttpResponse:
        request = self._client.build_request(method, url, headers=dict(headers), content=body,
                                             timeout=timeout_s)
        try:
            # httpx's timeout is per socket operation; this makes it a total, as with aiohttp.
            async with asyncio.timeout(timeout_s):
                return await self._exchange(request)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise DeliveryTimeout(f"no complete response within {timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise DeliveryConnectionError(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(self, request: httpx.Request) -> HttpResponse:
        response = await self._client.send(request, stream=True)
        try:
            content = bytearray()
            async for chunk in response.aiter_bytes():
                content += chunk[: self.body_cap - len(content)]
                if len(content) >= self.body_cap:
                    break  # closing an unread stream drops the connection instead of draining it
        finally:
            await response.aclose()
        return HttpResponse(response.status_code, _lower_names(response.headers.items()), bytes(content))

    async def close(self) -> None:
        await self._client.aclose()


def _lower_names(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def make_transport(name: Literal["aiohttp", "httpx"], max_connections: int = 100) -> HttpTransport:
    if name == "aiohttp":
        return AiohttpTransport(max_connections=max_connections)
    if name == "httpx":
        return HttpxTransport(max_connections=max_connections)
    raise ValueError(f"unknown HTTP client {name!r}: aiohttp or httpx")
