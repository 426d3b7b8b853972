"""Which header values are credentials, and how they are shown: only their scheme, never the value.

Used for the request headers kept with each attempt (ClickHouse) and for a subscription's own
headers in lists and views.
"""

from __future__ import annotations

from collections.abc import Mapping

CREDENTIAL_HINTS = ("auth", "token", "secret", "key", "password", "cookie")


def masked(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with every credential masked."""
    return {name: mask(name, value) for name, value in headers.items()}


def mask(name: str, value: str) -> str:
    """`Bearer ***` for an authorization header, `***` for any other credential, else the value."""
    lowered = name.lower()
    if lowered == "webhook-signature" or not any(hint in lowered for hint in CREDENTIAL_HINTS):
        return value
    scheme, _, rest = value.partition(" ")
    return f"{scheme} ***" if rest and lowered == "authorization" else "***"
