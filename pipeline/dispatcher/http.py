"""The one seam between the dispatcher and an HTTP client library.

Two implementations behind one Protocol, so `make bench` can measure both and the faster
one is the default (aiohttp: see DESIGN-NOTES for httpx's pool overhead). Redirects are
never followed; response bodies are read only up to a cap; timeouts and connection
failures come out as the same two exceptions whichever library sent the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import httpx

from pipeline.errors import PipelineError

RESPONSE_BODY_CAP = 64 * 1024


class DeliveryError(PipelineError):
    """The request did not get an HTTP response."""


class DeliveryTimeout(DeliveryError):
    pass


class DeliveryConnectionError(DeliveryError):
    pass


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


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
        # Created lazily: a session belongs to the loop that is running when it is made.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        return self._session

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                   timeout_s: float) -> HttpResponse:
        try:
            async with self._client().request(
                method, url, headers=dict(headers), data=body, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                content = await _read_capped_stream(response.content, self.body_cap)
                return HttpResponse(response.status, dict(response.headers), content)
        except asyncio.TimeoutError as exc:
            raise DeliveryTimeout(f"no response within {timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise DeliveryConnectionError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


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
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise DeliveryTimeout(f"no response within {timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise DeliveryConnectionError(f"{type(exc).__name__}: {exc}") from exc
        try:
            content = await _read_capped(response, self.body_cap)
        except httpx.TimeoutException as exc:
            raise DeliveryTimeout(f"response body not read within {timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise DeliveryConnectionError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            await response.aclose()
        return HttpResponse(response.status_code, dict(response.headers), content)

    async def close(self) -> None:
        await self._client.aclose()


async def _read_capped_stream(stream: aiohttp.StreamReader, cap: int) -> bytes:
    # read(n) returns what is buffered, possibly less than n: read until the cap or the end.
    content = bytearray()
    while len(content) < cap:
        chunk = await stream.read(cap - len(content))
        if not chunk:
            break
        content += chunk
    return bytes(content)


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    content = bytearray()
    async for chunk in response.aiter_raw():
        content += chunk[: cap - len(content)]
        if len(content) >= cap:
            break
    return bytes(content)


def make_transport(name: Literal["aiohttp", "httpx"], max_connections: int = 100) -> HttpTransport:
    if name == "aiohttp":
        return AiohttpTransport(max_connections=max_connections)
    return HttpxTransport(max_connections=max_connections)
