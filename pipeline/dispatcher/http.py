"""The one seam between the dispatcher and an HTTP client library.

Two implementations behind one Protocol, so the benchmark can measure both and the faster
one is the default (aiohttp: see DESIGN-NOTES for httpx's pool overhead). Whichever library
sends the request:

- only https, unless http is allowed; certificates are always verified, against the request's
  own CA bundle when it has one (see `tls`);
- the SSRF guard (see `guard`) checks every address the client connects to;
- connections are pooled per endpoint: at most `max_connections_per_host` to one endpoint and
  `max_connections` in all, so a hanging endpoint cannot take every connection;
- redirects are never followed (a 3xx is the endpoint's answer, and a failure);
- the timeout bounds the whole exchange, body included, not each socket operation;
- the response body is read only up to a cap, then the connection is dropped, not drained;
- the request's headers are sent as given: the client adds none of its own (no User-Agent,
  Accept, Accept-Encoding or Content-Type), only Host and Content-Length, so a header a
  subscription removed (`null`) is really not sent;
- response header names come back lower-case;
- no response at all comes out as one of these:

PipelineError
 └── DeliveryError              the request got no HTTP response
      ├── DeliveryTimeout          not complete within the timeout
      ├── DeliveryConnectionError  refused, reset, closed early, DNS failure
      │    └── DeliveryTLSError       TLS handshake or certificate verification failed, unusable CA bundle
      └── DeliveryRefused          never sent: a scheme or an address the guard does not allow
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver

from pipeline.dispatcher.guard import Guard, GuardedBackend, GuardedResolver, Refused
from pipeline.dispatcher.tls import CaContexts, bundle_key, is_tls_failure
from pipeline.errors import PipelineError

RESPONSE_BODY_CAP = 64 * 1024
DEFAULT_MAX_CONNECTIONS_PER_HOST = 32
HTTPX_MAX_POOLS = 256  # httpx clients kept, one per endpoint; the least recently used is closed
# Headers the client libraries add by themselves: the request says which it sends.
LIBRARY_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class DeliveryError(PipelineError):
    """The request got no HTTP response."""


class DeliveryTimeout(DeliveryError):
    pass


class DeliveryConnectionError(DeliveryError):
    pass


class DeliveryTLSError(DeliveryConnectionError):
    pass


class DeliveryRefused(DeliveryError):
    """Not sent at all: the URL's scheme, or an address its host resolves to, is not allowed."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes  # at most the transport's body cap


class HttpTransport(Protocol):
    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                   timeout_s: float, *, ca_bundle: str | None = None) -> HttpResponse: ...

    async def close(self) -> None: ...


class AiohttpTransport:
    """One session and one connector for every endpoint: aiohttp keys its pool by endpoint
    (host, port, TLS and the request's SSL context), and `limit_per_host` caps each key, so one
    endpoint's connections never take another's. Idle connections close after aiohttp's
    keep-alive timeout; SSL contexts are shared per CA bundle, so pooled connections are too."""

    def __init__(self, max_connections: int = 100, body_cap: int = RESPONSE_BODY_CAP, *,
                 allowed_networks: Iterable[str] = (), allow_http: bool = False,
                 max_connections_per_host: int = DEFAULT_MAX_CONNECTIONS_PER_HOST,
                 resolver: AbstractResolver | None = None):
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host
        self.body_cap = body_cap
        self.guard = Guard.build(allowed_networks, allow_http)
        self._resolver = GuardedResolver(self.guard, resolver)
        self._contexts = CaContexts()
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session binds to the loop running when it is created.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections_per_host,
                                             ttl_dns_cache=60, resolver=self._resolver)
            self._session = aiohttp.ClientSession(connector=connector, skip_auto_headers=LIBRARY_HEADERS)
        return self._session

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                   timeout_s: float, *, ca_bundle: str | None = None) -> HttpResponse:
        with _delivery_errors(timeout_s):
            self.guard.check_url(url)  # aiohttp asks no resolver about IP literals
            verify = _ca_context(self._contexts, ca_bundle) or True
            async with self._client().request(
                method, url, headers=dict(headers), data=body, allow_redirects=False, ssl=verify,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                content = await _read_aiohttp_capped(response.content, self.body_cap)
                return HttpResponse(response.status, _lower_names(response.headers.items()), content)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._resolver.close()


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
    """httpx has no per-host connection limit, and its SSL context is per client: so one client
    per (scheme, host, port, CA bundle), each limited to `max_connections_per_host`, kept in an
    LRU of `max_pools`, and a semaphore caps requests in flight over all of them.

    The guard sits in httpcore's network backend (`GuardedBackend`), set on the pool httpx
    builds: httpx has no public hook for it, and a version without that attribute fails here
    at the first request rather than sending unguarded."""

    def __init__(self, max_connections: int = 100, body_cap: int = RESPONSE_BODY_CAP, *,
                 allowed_networks: Iterable[str] = (), allow_http: bool = False,
                 max_connections_per_host: int = DEFAULT_MAX_CONNECTIONS_PER_HOST,
                 resolver: AbstractResolver | None = None, max_pools: int = HTTPX_MAX_POOLS):
        self.body_cap = body_cap
        self.max_connections_per_host = max_connections_per_host
        self.guard = Guard.build(allowed_networks, allow_http)
        self._resolver = GuardedResolver(self.guard, resolver)
        self._contexts = CaContexts()
        self._default_context: ssl.SSLContext | None = None
        self._pools = ClientPool(max_pools)
        self._in_flight = asyncio.Semaphore(max_connections)

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                   timeout_s: float, *, ca_bundle: str | None = None) -> HttpResponse:
        with _delivery_errors(timeout_s):
            self.guard.check_url(url)
            context = _ca_context(self._contexts, ca_bundle)
            target = httpx.URL(url)
            key = (target.scheme, target.host, target.port, ca_bundle and bundle_key(ca_bundle))
            # httpx's timeout is per socket operation; this makes it a total, as with aiohttp.
            async with asyncio.timeout(timeout_s), self._in_flight:
                async with self._pools.lease(key, lambda: self._new_client(context)) as client:
                    request = client.build_request(method, target, headers=dict(headers), content=body,
                                                   timeout=timeout_s)
                    return await self._exchange(client, request)

    def _new_client(self, context: ssl.SSLContext | None) -> httpx.AsyncClient:
        if context is None:
            self._default_context = self._default_context or httpx.create_ssl_context()
            context = self._default_context
        limit = self.max_connections_per_host
        transport = httpx.AsyncHTTPTransport(verify=context, trust_env=False,
                                             limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit))
        pool = transport._pool  # noqa: SLF001 - the only way to give httpcore a network backend
        if not hasattr(pool, "_network_backend"):
            raise RuntimeError("this httpx version cannot take the SSRF guard: use the aiohttp client")
        pool._network_backend = GuardedBackend(self._resolver)  # noqa: SLF001
        client = httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
        for name in (*LIBRARY_HEADERS, "Connection"):  # HTTP/1.1 keeps connections alive without it
            client.headers.pop(name, None)
        return client

    async def _exchange(self, client: httpx.AsyncClient, request: httpx.Request) -> HttpResponse:
        response = await client.send(request, stream=True)
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
        await self._pools.close()
        await self._resolver.close()


@dataclass
class _Pooled:
    client: httpx.AsyncClient
    users: int = 0
    evicted: bool = False


class ClientPool:
    """httpx clients by key, at most `max_size`; an evicted client is closed once no request uses it."""

    def __init__(self, max_size: int):
        self.max_size = max_size
        self._entries: OrderedDict[object, _Pooled] = OrderedDict()

    @asynccontextmanager
    async def lease(self, key: object, make: Callable[[], httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Pooled(make())
        self._entries.move_to_end(key)
        entry.users += 1
        try:
            while len(self._entries) > self.max_size:
                await self._retire(self._entries.popitem(last=False)[1])
            yield entry.client
        finally:
            entry.users -= 1
            if entry.evicted and not entry.users:
                await entry.client.aclose()

    def __len__(self) -> int:
        return len(self._entries)

    async def _retire(self, entry: _Pooled) -> None:
        entry.evicted = True
        if not entry.users:
            await entry.client.aclose()

    async def close(self) -> None:
        entries, self._entries = list(self._entries.values()), OrderedDict()
        for entry in entries:
            await self._retire(entry)


def _ca_context(contexts: CaContexts, ca_bundle: str | None) -> ssl.SSLContext | None:
    if not ca_bundle:  # None or empty: the default trust store
        return None
    try:
        return contexts.get(ca_bundle)
    except ValueError as exc:
        raise DeliveryTLSError(str(exc)) from exc


@contextmanager
def _delivery_errors(timeout_s: float) -> Iterator[None]:
    """Every client library's failures, as the DeliveryError tree."""
    try:
        yield
    except Refused as exc:
        raise DeliveryRefused(str(exc)) from exc
    except (TimeoutError, httpx.TimeoutException) as exc:  # aiohttp's timeout errors subclass TimeoutError
        raise DeliveryTimeout(f"no complete response within {timeout_s:g} s") from exc
    except (aiohttp.ClientError, httpx.TransportError) as exc:
        tls = isinstance(exc, aiohttp.ClientSSLError) or is_tls_failure(exc)
        raise (DeliveryTLSError if tls else DeliveryConnectionError)(f"{type(exc).__name__}: {exc}") from exc


def _lower_names(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def make_transport(name: Literal["aiohttp", "httpx"], max_connections: int = 100, *,
                   allowed_networks: Iterable[str] = (), allow_http: bool = False,
                   max_connections_per_host: int = DEFAULT_MAX_CONNECTIONS_PER_HOST) -> HttpTransport:
    """`allowed_networks` (CIDR strings) pass the SSRF guard whatever they are; `allow_http`
    lets plain http:// through. Tests and the benchmark, posting to 127.0.0.1, set both."""
    if name not in ("aiohttp", "httpx"):
        raise ValueError(f"unknown HTTP client {name!r}: aiohttp or httpx")
    kind = AiohttpTransport if name == "aiohttp" else HttpxTransport
    return kind(max_connections=max_connections, allowed_networks=allowed_networks, allow_http=allow_http,
                max_connections_per_host=max_connections_per_host)
