"""Which header values are credentials, and how they are shown: only their scheme, never the value.

Used for the request headers kept with each attempt (ClickHouse) and for a subscription's own
headers in lists and views.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import lru_cache

CREDENTIAL_HINTS = ("auth", "token", "secret", "key", "password", "cookie")


def masked(headers: Mapping[str, str], hidden: Collection[str] = ()) -> dict[str, str]:
    """The headers with every credential masked, and the values of those named in `hidden`
    (lower-case names) too, whatever they are."""
    return {name: "***" if name in hidden else mask(name, value) for name, value in headers.items()}


def mask(name: str, value: str) -> str:
    """`Bearer ***` for an authorization header, `***` for any other credential, else the value."""
    if not is_credential(name):
        return value
    scheme, _, rest = value.partition(" ")
    return f"{scheme} ***" if rest and name.lower() == "authorization" else "***"


@lru_cache(maxsize=1024)  # every delivery asks about the same few header names
def is_credential(name: str) -> bool:
    lowered = name.lower()
    return lowered != "webhook-signature" and any(hint in lowered for hint in CREDENTIAL_HINTS)
