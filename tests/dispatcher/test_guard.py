"""Delivery safety: the SSRF guard, https only by default, and certificate verification.

Traffic goes to 127.0.0.1 only. Every socket connect in these tests is recorded, and one to
any other address fails before it leaves the machine; the refusal tests assert that nothing
was connected to at all, so the guard is shown to refuse before connecting.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpcore
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.dispatcher.guard import (
    Guard,
    GuardedBackend,
    GuardedResolver,
    Refused,
    forbidden_kind,
    parse_networks,
)
from pipeline.dispatcher.http import (
    AiohttpTransport,
    DeliveryConnectionError,
    DeliveryRefused,
    DeliveryTLSError,
    HttpTransport,
    HttpxTransport,
    make_transport,
)

TRANSPORTS = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}
LOOPBACK = ["127.0.0.0/8"]


# --- the address policy alone ---------------------------------------------------------------

@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "a loopback address"),
    ("127.9.9.9", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("169.254.169.254", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("fec0::1", "a site-local address"),  # deprecated (RFC 3879), and Python calls it global
    ("feff::1", "a site-local address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("100.64.0.1", "a non-global address"),
    ("::ffff:127.0.0.1", "a loopback address (it embeds 127.0.0.1)"),
    ("::ffff:10.0.0.1", "a private address (it embeds 10.0.0.1)"),
    ("2002:7f00:1::", "a loopback address (it embeds 127.0.0.1)"),
    ("64:ff9b::a9fe:a9fe", "a link-local address (it embeds 169.254.169.254)"),
])
def test_addresses_that_are_not_public_are_named_for_what_they_are(address: str, kind: str) -> None:
    assert forbidden_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111", "::ffff:93.184.215.14",
                                     "64:ff9b::5db8:d70e"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_kind(ipaddress.ip_address(address)) is None
    assert Guard().refusal("example.com", address) is None


def test_the_allow_list_lets_its_networks_through_and_nothing_else() -> None:
    guard = Guard.build(["127.0.0.0/8", "fd00::/8"])
    assert guard.refusal("127.0.0.1", "127.0.0.1") is None
    assert guard.refusal("h", "::ffff:127.0.0.1") is None  # the same address, IPv4-mapped
    assert guard.refusal("h", "fd00::5") is None
    assert guard.refusal("h", "10.0.0.1") == "h resolves to 10.0.0.1, a private address; " \
                                              "allow it with the allowed-networks setting"
    assert guard.refusal("::1", "::1") == "::1 is a loopback address; allow it with the allowed-networks setting"


def test_an_address_that_is_not_an_ip_address_is_refused() -> None:
    assert Guard().refusal("h", "not-an-ip") == "h: 'not-an-ip' is not a valid IP address"
    assert Guard.build(["0.0.0.0/0", "::/0"]).refusal("h", "10.0.0.300") == "h: '10.0.0.300' is not a valid IP address"


def test_the_guard_refuses_plain_http_and_allows_nothing_extra_by_default() -> None:
    assert Guard.build() == Guard() == Guard((), allow_http=False)
    assert Guard.build(LOOPBACK).allow_http is False
    assert Guard.build(LOOPBACK, allow_http=True).allow_http is True


def test_an_allowed_network_may_be_written_with_host_bits_set() -> None:
    assert parse_networks("10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)
    assert Guard.build(["10.1.2.3/8"]).refusal("h", "10.200.0.1") is None


def test_an_allowed_network_never_covers_the_other_ip_version() -> None:
    assert Guard.build(["::/0"]).refusal("h", "127.0.0.1") is not None
    assert Guard.build(["0.0.0.0/0"]).refusal("h", "::1") is not None


def test_allowed_networks_are_parsed_from_a_list_or_a_comma_separated_string() -> None:
    assert parse_networks("127.0.0.0/8, ::1") == parse_networks(["127.0.0.0/8", "::1/128"])
    with pytest.raises(ValueError, match="'localhost'"):
        parse_networks(["127.0.0.0/8", "localhost"])


@pytest.mark.parametrize(("url", "message"), [
    ("http://example.com/hook", "plain http is refused"),
    ("ftp://example.com/hook", "only https"),
    ("https://10.0.0.5/hook", "10.0.0.5 is a private address"),
    ("https://[::ffff:169.254.169.254]/", "a link-local address (it embeds 169.254.169.254)"),
    ("https://0.0.0.0:8443/", "is an unspecified address"),
    ("https://2130706433/hook", "not a dotted-quad IPv4 address"),
    ("https://0x7f000001/hook", "not a dotted-quad IPv4 address"),
    ("https://0177.0.0.1/hook", "not a dotted-quad IPv4 address"),
    ("https://[fec0::1]/", "fec0::1 is a site-local address"),
    ("https://[::1", "'https://[::1' is not a valid URL: "),
    ("https:///hook", "https:///hook: no host"),
    ("https://", "https://: no host"),
    ("https://999.1.1.1/hook", "host '999.1.1.1' is a number but not a dotted-quad IPv4 address"),
    ("https://[zz::1]/hook", "host 'zz::1' is not a valid IPv6 address"),
    ("mailto:ops@example.com", "mailto:ops@example.com: only https URLs are delivered to"),
    ("example.com/hook", "example.com/hook: only https URLs are delivered to"),
])
def test_urls_are_checked_before_any_lookup(url: str, message: str) -> None:
    with pytest.raises(Refused, match=re.escape(message)):
        Guard().check_url(url)


def test_an_answer_that_is_no_address_is_refused() -> None:
    """URLs never get this far with one (see above); a resolver's answer can."""
    assert Guard().refusal("example.com", "999.1.1.1") == "example.com: '999.1.1.1' is not a valid IP address"


def test_a_public_https_url_or_a_host_name_passes_the_url_check() -> None:
    Guard().check_url("https://93.184.215.14/hook")
    Guard().check_url("https://hooks.example.com/hook")  # names are checked where they resolve
    assert Guard().url_refusal("https://[2606:4700:4700::1111]:8443/hook") is None


def test_plain_http_passes_the_url_check_only_when_allowed() -> None:
    allowing = Guard.build(LOOPBACK, allow_http=True)
    assert allowing.url_refusal("http://127.0.0.1:8080/hook") is None
    assert allowing.url_refusal("http://10.0.0.5/hook") == "10.0.0.5 is a private address; " + \
        "allow it with the allowed-networks setting"
    assert Guard.build(LOOPBACK).url_refusal("http://127.0.0.1/") == \
        "http://127.0.0.1/: plain http is refused; use https, or allow http with the allow-http setting"


# --- through the transports, against real local servers --------------------------------------

@pytest.fixture(autouse=True)
def connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every address a socket connects to in the test; anything but loopback fails unsent."""
    seen: list[str] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address) -> None:  # type: ignore[no-untyped-def]
        seen.append(address[0])
        if address[0] not in ("127.0.0.1", "::1"):
            raise PermissionError(f"the test tried to connect to {address[0]}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield seen


class MapResolver(AbstractResolver):
    """A resolver answering from a table, and counting its lookups."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table
        self.lookups: list[str] = []
        self.calls: list[tuple[str, int, socket.AddressFamily]] = []
        self.closed = False

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        self.calls.append((host, port, family))
        if host not in self.table:
            raise OSError(f"{host} is not in the table")
        return [{"hostname": host, "host": address, "port": port, "proto": 0, "flags": 0,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET} for address in self.table[host]]

    async def close(self) -> None:
        self.closed = True


# --- the guarded resolver and httpcore backend, on fakes ---------------------------------------

@pytest.mark.asyncio
async def test_the_guarded_resolver_asks_its_resolver_as_it_was_asked_and_keeps_the_allowed() -> None:
    inner = MapResolver({"mixed.example": ["10.0.0.5", "127.0.0.1", "::1"]})
    resolver = GuardedResolver(Guard.build(["127.0.0.0/8", "::1/128"]), inner)
    answers = await resolver.resolve("mixed.example", 8443, socket.AF_UNSPEC)
    assert [answer["host"] for answer in answers] == ["127.0.0.1", "::1"]
    await resolver.resolve("mixed.example")
    assert inner.calls == [("mixed.example", 8443, socket.AF_UNSPEC), ("mixed.example", 0, socket.AF_INET)]


@pytest.mark.asyncio
async def test_the_guarded_resolver_refuses_with_the_first_reason_or_an_empty_answer() -> None:
    resolver = GuardedResolver(Guard(), MapResolver({"internal.example": ["127.0.0.1", "10.0.0.5"],
                                                     "nowhere.example": []}))
    with pytest.raises(Refused, match=r"^internal\.example resolves to 127\.0\.0\.1, a loopback address; "):
        await resolver.resolve("internal.example", 443)
    with pytest.raises(Refused) as refused:
        await resolver.resolve("nowhere.example", 443)
    assert str(refused.value) == "nowhere.example resolved to no address"


@pytest.mark.asyncio
async def test_the_guarded_resolver_closes_only_a_resolver_it_made() -> None:
    given = MapResolver({})
    resolver = GuardedResolver(Guard(), given)
    await resolver.close()
    assert not given.closed
    own = GuardedResolver(Guard.build(LOOPBACK))
    for _ in range(2):  # closing forgets aiohttp's resolver, and the next lookup makes a new one
        assert [answer["host"] for answer in await own.resolve("127.0.0.1", 80)] == ["127.0.0.1"]
        await own.close()


@pytest.mark.asyncio
async def test_the_guarded_resolver_closes_the_resolver_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[MapResolver] = []

    def make() -> MapResolver:
        made.append(MapResolver({"h": ["127.0.0.1"]}))
        return made[-1]

    monkeypatch.setattr("pipeline.dispatcher.guard.DefaultResolver", make)
    resolver = GuardedResolver(Guard.build(LOOPBACK))
    await resolver.close()  # nothing made yet, nothing to close
    await resolver.resolve("h", 80)
    await resolver.close()
    assert [inner.closed for inner in made] == [True]


class FakeBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, failing for the addresses given and recording every call."""

    def __init__(self, failing: dict[str, Exception]):
        self.failing = failing
        self.connects: list[tuple[str, int, dict[str, object]]] = []
        self.slept: list[float] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[no-untyped-def]
        self.connects.append((host, port, {"timeout": timeout, "local_address": local_address,
                                           "socket_options": socket_options}))
        if host in self.failing:
            raise self.failing[host]
        return f"stream to {host}"

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _backend(table: dict[str, list[str]], failing: dict[str, Exception]) -> tuple[GuardedBackend, MapResolver,
                                                                                    FakeBackend]:
    lookups, inner = MapResolver(table), FakeBackend(failing)
    return GuardedBackend(GuardedResolver(Guard.build(["127.0.0.0/8", "::1/128"]), lookups), inner), lookups, inner


@pytest.mark.asyncio
async def test_the_backend_connects_to_the_allowed_answers_in_order_with_the_callers_options() -> None:
    backend, lookups, inner = _backend({"::1": ["::1", "10.0.0.1", "127.0.0.1"]},
                                       {"::1": httpcore.ConnectError("refused")})
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    stream = await backend.connect_tcp("[::1]", 8443, timeout=2.5, local_address="127.0.0.2", socket_options=options)
    assert stream == "stream to 127.0.0.1"
    assert lookups.calls == [("::1", 8443, socket.AF_UNSPEC)]  # an IPv6 literal without its brackets
    expected = {"timeout": 2.5, "local_address": "127.0.0.2", "socket_options": options}
    assert inner.connects == [("::1", 8443, expected), ("127.0.0.1", 8443, expected)]


@pytest.mark.asyncio
async def test_the_backend_looks_up_a_host_name_as_it_is() -> None:
    backend, lookups, _ = _backend({"X-ray.example": ["127.0.0.1"]}, {})
    assert await backend.connect_tcp("X-ray.example", 443) == "stream to 127.0.0.1"
    assert lookups.lookups == ["X-ray.example"]


@pytest.mark.asyncio
async def test_the_backend_raises_the_last_failure_when_no_answer_connects() -> None:
    last = httpcore.ConnectTimeout("slow")
    backend, _, inner = _backend({"both.example": ["127.0.0.1", "127.0.0.2"]},
                                 {"127.0.0.1": httpcore.ConnectError("refused"), "127.0.0.2": last})
    with pytest.raises(httpcore.ConnectTimeout) as raised:
        await backend.connect_tcp("both.example", 443)
    assert raised.value is last
    assert [host for host, _, _ in inner.connects] == ["127.0.0.1", "127.0.0.2"]


@pytest.mark.asyncio
async def test_the_backend_reports_a_failed_lookup_as_a_connect_error_and_refuses_unix_sockets() -> None:
    backend, _, inner = _backend({}, {})
    with pytest.raises(httpcore.ConnectError, match=r"^unknown\.example: unknown\.example is not in the table$"):
        await backend.connect_tcp("unknown.example", 443)
    with pytest.raises(Refused, match=r"^unix socket /run/docker\.sock: only TCP is delivered to$"):
        await backend.connect_unix_socket("/run/docker.sock")
    await backend.sleep(0.25)
    assert (inner.connects, inner.slept) == ([], [0.25])


@dataclass
class Receiver:
    port: int
    hits: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(status=200, body=b"got " + await request.read())


async def _serve(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver(port=0)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async for served in _serve():
        yield served


@pytest.fixture(params=list(TRANSPORTS))
def client(request: pytest.FixtureRequest) -> type[AiohttpTransport] | type[HttpxTransport]:
    return TRANSPORTS[request.param]


@pytest_asyncio.fixture
async def opened() -> AsyncIterator[list[HttpTransport]]:
    made: list[HttpTransport] = []
    yield made
    for transport in made:
        await transport.close()


@pytest.fixture
def transport_of(client, opened):  # type: ignore[no-untyped-def]
    def build(**options) -> HttpTransport:  # type: ignore[no-untyped-def]
        transport = client(**{"allow_http": True} | options)
        opened.append(transport)
        return transport
    return build


async def _refused(transport: HttpTransport, url: str, **options: str) -> str:
    with pytest.raises(DeliveryRefused) as refused:
        await transport.send("POST", url, {}, b"{}", 5, **options)
    return str(refused.value)


@pytest.mark.asyncio
async def test_loopback_is_refused_without_the_allow_list_and_delivered_with_it(
        transport_of, receiver: Receiver, connects: list[str]) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hook"
    message = await _refused(transport_of(), url)
    assert message == "127.0.0.1 is a loopback address; allow it with the allowed-networks setting"
    assert (receiver.hits, connects) == (0, [])
    response = await transport_of(allowed_networks=LOOPBACK).send("POST", url, {}, b"hi", 5)
    assert (response.status, response.body, receiver.hits) == (200, b"got hi", 1)


@pytest.mark.asyncio
async def test_a_host_name_resolving_to_loopback_is_refused(transport_of, receiver: Receiver,
                                                            connects: list[str]) -> None:
    message = await _refused(transport_of(), f"http://localhost:{receiver.port}/hook")
    assert message.startswith("localhost resolves to 127.0.0.1, a loopback address")
    assert (receiver.hits, connects) == (0, [])
    response = await transport_of(allowed_networks=LOOPBACK).send(
        "POST", f"http://localhost:{receiver.port}/hook", {}, b"", 5)
    assert response.status == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("private", ["10.0.0.5", "192.168.1.20", "172.16.4.4", "169.254.169.254", "fd00::7"])
async def test_a_host_name_resolving_to_a_private_address_is_refused_unconnected(
        transport_of, connects: list[str], private: str) -> None:
    resolver = MapResolver({"internal.example": [private]})
    message = await _refused(transport_of(allowed_networks=LOOPBACK, resolver=resolver),
                             "https://internal.example/hook")
    assert message.startswith(f"internal.example resolves to {private}, a ")
    assert resolver.lookups == ["internal.example"]
    assert connects == []


@pytest.mark.asyncio
async def test_only_the_allowed_answers_of_a_lookup_are_connected_to(transport_of, receiver: Receiver,
                                                                      connects: list[str]) -> None:
    # One lookup per connection, and the connection goes to what that lookup allowed: an
    # answer that changes between a check and the connect (DNS rebinding) has no gap to use.
    resolver = MapResolver({"mixed.example": ["10.0.0.5", "127.0.0.1", "192.168.0.9"]})
    transport = transport_of(allowed_networks=LOOPBACK, resolver=resolver)
    response = await transport.send("POST", f"http://mixed.example:{receiver.port}/hook", {}, b"x", 5)
    assert (response.status, receiver.hits) == (200, 1)
    assert resolver.lookups == ["mixed.example"]
    assert connects == ["127.0.0.1"]


@pytest.mark.asyncio
@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.1", "172.31.255.1", "169.254.169.254", "0.0.0.0",
                                  "[fd00::1]", "[fe80::1]", "[::]", "[::ffff:10.0.0.5]"])
async def test_an_ip_literal_private_url_is_refused_unconnected(transport_of, connects: list[str], host: str) -> None:
    resolver = MapResolver({})
    message = await _refused(transport_of(allowed_networks=LOOPBACK, resolver=resolver), f"https://{host}:8443/hook")
    assert "allow it with the allowed-networks setting" in message
    assert (resolver.lookups, connects) == ([], [])  # refused from the URL: no lookup, no connect


@pytest.mark.asyncio
@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1"])
async def test_a_numeric_host_is_refused_unconnected_even_where_its_address_is_allowed(
        transport_of, receiver: Receiver, connects: list[str], host: str) -> None:
    resolver = MapResolver({})
    message = await _refused(transport_of(allowed_networks=LOOPBACK, resolver=resolver),
                             f"http://{host}:{receiver.port}/hook")
    assert "not a dotted-quad IPv4 address" in message
    assert (resolver.lookups, connects, receiver.hits) == ([], [], 0)


@pytest.mark.asyncio
async def test_an_ipv4_mapped_loopback_address_is_refused(transport_of, receiver: Receiver,
                                                          connects: list[str]) -> None:
    message = await _refused(transport_of(), f"http://[::ffff:127.0.0.1]:{receiver.port}/hook")
    assert "a loopback address (it embeds 127.0.0.1)" in message
    assert (receiver.hits, connects) == (0, [])


@pytest.mark.asyncio
async def test_plain_http_is_refused_by_default(client, opened, receiver: Receiver, connects: list[str]) -> None:
    transport = client(allowed_networks=LOOPBACK)
    opened.append(transport)
    message = await _refused(transport, f"http://127.0.0.1:{receiver.port}/hook")
    assert "plain http is refused; use https" in message
    assert (receiver.hits, connects) == (0, [])


def test_make_transport_guards_by_default() -> None:
    for name in TRANSPORTS:
        transport = make_transport(name)  # type: ignore[arg-type]
        assert transport.guard == Guard()  # type: ignore[attr-defined]
        allowing = make_transport(name, 10, allowed_networks=LOOPBACK, allow_http=True)  # type: ignore[arg-type]
        assert allowing.guard == Guard.build(LOOPBACK, allow_http=True)  # type: ignore[attr-defined]


# --- TLS: a receiver whose certificate only its own CA vouches for -----------------------------

@dataclass(frozen=True)
class Pki:
    ca_pem: str
    cert_pem: bytes
    key_pem: bytes


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
                 signer: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                        critical=True)
    else:
        builder = (builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                         critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(signer, hashes.SHA256())


def _pki() -> Pki:
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, None, ca_key, ca=True)
    leaf = _certificate("127.0.0.1", leaf_key, ca.subject, ca_key, ca=False)
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    return Pki(ca.public_bytes(serialization.Encoding.PEM).decode(), leaf.public_bytes(serialization.Encoding.PEM),
               key_pem)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return _pki()


@pytest_asyncio.fixture
async def tls_receiver(pki: Pki, tmp_path: Path) -> AsyncIterator[Receiver]:
    (tmp_path / "cert.pem").write_bytes(pki.cert_pem)
    (tmp_path / "key.pem").write_bytes(pki.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    async for served in _serve(context):
        yield served


@pytest.mark.asyncio
async def test_a_self_signed_receiver_is_refused_without_its_ca_and_reached_with_it(
        transport_of, tls_receiver: Receiver, pki: Pki) -> None:
    transport = transport_of(allowed_networks=LOOPBACK, allow_http=False)
    url = f"https://127.0.0.1:{tls_receiver.port}/hook"
    with pytest.raises(DeliveryTLSError, match="(?i)certificate") as failed:
        await transport.send("POST", url, {}, b"secret", 5)
    assert isinstance(failed.value, DeliveryConnectionError)  # retried like any connection failure
    assert tls_receiver.hits == 0
    response = await transport.send("POST", url, {}, b"secret", 5, ca_bundle=pki.ca_pem)
    assert (response.status, response.body, tls_receiver.hits) == (200, b"got secret", 1)


@pytest.mark.asyncio
async def test_another_ca_bundle_does_not_vouch_for_the_receiver(transport_of, tls_receiver: Receiver) -> None:
    transport = transport_of(allowed_networks=LOOPBACK, allow_http=False)
    with pytest.raises(DeliveryTLSError, match="(?i)certificate"):
        await transport.send("POST", f"https://127.0.0.1:{tls_receiver.port}/hook", {}, b"", 5,
                             ca_bundle=_pki().ca_pem)
    assert tls_receiver.hits == 0


@pytest.mark.asyncio
async def test_an_unusable_ca_bundle_is_a_tls_error_and_nothing_is_sent(transport_of, tls_receiver: Receiver,
                                                                        connects: list[str]) -> None:
    transport = transport_of(allowed_networks=LOOPBACK, allow_http=False)
    with pytest.raises(DeliveryTLSError, match="CA bundle"):
        await transport.send("POST", f"https://127.0.0.1:{tls_receiver.port}/hook", {}, b"", 5,
                             ca_bundle="-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert (tls_receiver.hits, connects) == (0, [])


@pytest.mark.asyncio
async def test_the_guard_still_applies_to_https_with_a_ca_bundle(transport_of, tls_receiver: Receiver,
                                                                 pki: Pki, connects: list[str]) -> None:
    message = await _refused(transport_of(allow_http=False), f"https://127.0.0.1:{tls_receiver.port}/hook",
                             ca_bundle=pki.ca_pem)
    assert message.startswith("127.0.0.1 is a loopback address")
    assert (tls_receiver.hits, connects) == (0, [])
