"""The SSRF guard: which addresses a webhook may be delivered to, checked where the client connects.

A host is resolved, and every address the resolver returns is checked before the client may
connect to it: loopback, private (RFC 1918, fc00::/7), link-local, unspecified, multicast,
reserved and other non-global addresses are refused, and so are the IPv6 forms that embed one
of those (IPv4-mapped ::ffff:a.b.c.d, 6to4 2002::/16, NAT64 64:ff9b::/96). An address inside
one of the explicitly allowed networks passes whatever it is (tests and on-premise targets).

Because the check runs on the resolver's answer for this very connection, a name that resolves
to a public address when first looked at and to a private one later (DNS rebinding) is caught.

- aiohttp: `GuardedResolver` is the connector's resolver. aiohttp does not call a resolver for
  an IP-literal host, so `Guard.check_url` checks those before the request, and refuses the
  hosts only a resolver reads as an address (`2130706433`, `0x7f000001`, `0177.0.0.1`).
- httpx: `GuardedBackend` is httpcore's network backend; it resolves through the same
  `GuardedResolver` and connects only to the addresses that passed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import httpcore
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.helpers import is_ip_address
from aiohttp.resolver import DefaultResolver

from pipeline.subscriptions.urls import host_problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
ALLOW_HINT = "allow it with the allowed-networks setting"


class Refused(Exception):
    """The guard will not let this request out; the message says why. The transports turn it
    into DeliveryRefused."""


def parse_networks(networks: Iterable[str] | str) -> tuple[IPNetwork, ...]:
    """["127.0.0.0/8", "::1"] (or "127.0.0.0/8,::1") -> networks; a bad entry raises ValueError naming it."""
    if isinstance(networks, str):
        networks = [part for part in networks.split(",") if part.strip()]
    parsed = []
    for network in networks:
        try:
            parsed.append(ipaddress.ip_network(network.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"allowed network {network!r} is not a network: {exc}") from exc
    return tuple(parsed)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


_KINDS = (  # the first match names the refusal: 127/8 and 169.254/16 are in is_private too
    ("an unspecified", lambda ip: ip.is_unspecified),
    ("a loopback", lambda ip: ip.is_loopback),
    ("a link-local", lambda ip: ip.is_link_local),
    ("a site-local", lambda ip: getattr(ip, "is_site_local", False)),
    ("a multicast", lambda ip: ip.is_multicast),
    ("a reserved", lambda ip: ip.is_reserved),
    ("a private", lambda ip: ip.is_private),
    ("a non-global", lambda ip: not ip.is_global),
)


def forbidden_kind(address: IPAddress) -> str | None:
    """'a loopback address' and the like when the address must not be delivered to, else None."""
    inner = embedded_ipv4(address)
    if inner is not None:
        kind = forbidden_kind(inner)
        return f"{kind} (it embeds {inner})" if kind else None
    for kind, matches in _KINDS:
        if matches(address):
            return f"{kind} address"
    return None


@dataclass(frozen=True)
class Guard:
    allowed_networks: tuple[IPNetwork, ...] = ()
    allow_http: bool = False

    @classmethod
    def build(cls, allowed_networks: Iterable[str] | str = (), allow_http: bool = False) -> Guard:
        return cls(parse_networks(allowed_networks), allow_http)

    def is_allowed(self, address: IPAddress) -> bool:
        inner = embedded_ipv4(address)
        candidates = (address,) if inner is None else (address, inner)
        # `in` across IP versions compares bare integers: keep to networks of the same version.
        return any(ip in network for ip in candidates for network in self.allowed_networks
                   if ip.version == network.version)

    def refusal(self, host: str, address: str) -> str | None:
        """Why `host` must not be reached at `address`, or None when it may."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return f"{host}: {address!r} is not a valid IP address"
        kind = forbidden_kind(ip)
        if kind is None or self.is_allowed(ip):
            return None
        said = f"{ip} is" if host == address else f"{host} resolves to {ip},"
        return f"{said} {kind}; {ALLOW_HINT}"

    def check_url(self, url: str) -> None:
        """Before the request: the scheme, and the host when it is an IP literal (no resolver
        sees those in aiohttp)."""
        if reason := self.url_refusal(url):
            raise Refused(reason)

    @lru_cache(maxsize=4096)  # noqa: B019 -- guards live as long as the process; the answer for a URL never changes
    def url_refusal(self, url: str) -> str | None:
        try:
            parsed = yarl.URL(url)  # the parser aiohttp uses, so the host is the one it would connect to
        except ValueError as exc:
            return f"{url!r} is not a valid URL: {exc}"
        if parsed.scheme not in ("http", "https"):
            return f"{url}: only https URLs are delivered to"
        if parsed.scheme == "http" and not self.allow_http:
            return f"{url}: plain http is refused; use https, or allow http with the allow-http setting"
        host = parsed.raw_host
        if not host:
            return f"{url}: no host"
        if problem := host_problem(host):  # 2130706433 and the like: the resolver would read an address
            return f"{url}: {problem}"
        return self.refusal(host, host) if is_ip_address(host) else None


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (aiohttp's default resolver unless given), keeps only the addresses
    the guard allows, and refuses the host when none is left."""

    def __init__(self, guard: Guard, inner: AbstractResolver | None = None):
        self.guard = guard
        self._inner = inner
        self._owns_inner = inner is None

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()  # binds to the running loop: made on first use
        answers = await self._inner.resolve(host, port, family)
        refusals = [self.guard.refusal(host, answer["host"]) for answer in answers]
        allowed = [answer for answer, refusal in zip(answers, refusals) if refusal is None]
        if not allowed:
            raise Refused(next(filter(None, refusals), f"{host} resolved to no address"))
        return allowed

    async def close(self) -> None:
        if self._owns_inner and self._inner is not None:
            await self._inner.close()
        self._inner = None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guarded resolver returned."""

    def __init__(self, resolver: GuardedResolver, inner: httpcore.AsyncNetworkBackend | None = None):
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            answers = await self._resolver.resolve(host.strip("[]"), port, socket.AF_UNSPEC)
        except OSError as exc:  # a failed lookup, as httpcore reports a failed connect
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        last_error: Exception | None = None
        for answer in answers:  # in the resolver's order, as a plain socket connect would
            try:
                return await self._inner.connect_tcp(answer["host"], port, timeout=timeout,
                                                     local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # the resolver refuses an empty answer
        raise last_error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise Refused(f"unix socket {path}: only TCP is delivered to")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
