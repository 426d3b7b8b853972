"""What an endpoint URL may be: http or https, a host that names one machine unambiguously, and
no credentials.

A host that ends in a number is an IPv4 address to a browser (the WHATWG URL standard) and to
the system resolver, which read `2130706433`, `0x7f000001`, `0177.0.0.1` and `127.1` all as
127.0.0.1; only the dotted quad is accepted, so what a user reads is where the webhook goes.
Credentials in the URL (`user:password@`) are refused: a URL is shown in lists, logs and
operator events, while `auth` keeps them encrypted at rest.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?", re.IGNORECASE)
NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*", re.IGNORECASE)
CREDENTIALS_IN_URL = ('must not carry credentials (user:password@); give them as auth '
                      '{"type": "basic", "username": ..., "password": ...}, which is kept encrypted')


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an endpoint's URL, or None. The message never repeats the URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL with a host"
    if any(ch in url for ch in "\r\n\t "):
        return "must not contain whitespace"
    if "@" in parts.netloc:
        return CREDENTIALS_IN_URL
    try:
        parts.port  # noqa: B018 -- urlsplit checks the port only when asked for it
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    return host_problem(parts.hostname)


def host_problem(host: str) -> str | None:
    """Why a URL's host (IPv6 without its brackets) is not one to deliver to, or None."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"host {host!r} is not a valid IPv6 address"
        return None
    name = host.removesuffix(".")
    if NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return (f"host {host!r} is a number but not a dotted-quad IPv4 address like 192.0.2.10: "
                    "integer, hex, octal and shortened forms are refused")
        return None
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return f"host {host!r} is not a valid international host name"
    if not HOST_NAME.fullmatch(name):
        return f"host {host!r} is not a host name (letters, digits, '-', '_' and '.', nothing percent-encoded)"
    return None


def moved_credentials(record: dict[str, Any]) -> dict[str, Any]:
    """A stored subscription whose URL carries credentials (accepted before they were refused),
    with them moved to basic auth, which is how they were sent; auth already set wins."""
    parts = urlsplit(record["url"])
    if "@" not in parts.netloc:
        return record
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    moved = record | {"url": bare}
    if record["auth"]["type"] == "none" and parts.username:
        moved["auth"] = {"type": "basic", "username": unquote(parts.username),
                         "password": unquote(parts.password or ""), "token": None}
    return moved
