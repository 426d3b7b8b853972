"""Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}." + body)).

The key is the base64 text after the `whsec_` prefix. One signature per active secret,
space-separated, so a secret can rotate without a gap: a receiver accepts the request when
any one of them matches its own secret.

Subscriptions with `signing: hmac-sha256` send instead the hex HMAC-SHA256 of the body alone,
with the same key, in `x-signature` (also one per active secret, space-separated).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300
BODY_SIGNATURE_ALGORITHM = "sha256"  # what `x-signature-algo` names, or means when it is absent


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret; raises ValueError when it is not base64."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a webhook secret must be {SECRET_PREFIX}<base64>: {exc}") from None


# Every request is signed with its endpoint's secrets: decode each secret once, not once per request.
# (Wrapped here rather than decorated above, so that mutation testing reaches decode_secret.)
secret_key = lru_cache(maxsize=4096)(decode_secret)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION}," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def webhook_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }


def body_signature(secret: str, body: bytes) -> str:
    """The `hmac-sha256` scheme: hex HMAC-SHA256 of the body alone."""
    return hmac.new(secret_key(secret), body, hashlib.sha256).hexdigest()


def verify_body_signature(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """True when one hex signature offered in `x-signature` matches (no timestamp is signed)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if lowered.get("x-signature-algo", BODY_SIGNATURE_ALGORITHM).lower() != BODY_SIGNATURE_ALGORITHM:
        return False
    expected = body_signature(secret, body).encode()
    offered = lowered.get("x-signature", "").split()
    return any(hmac.compare_digest(expected, candidate.lower().encode(errors="replace")) for candidate in offered)


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: float = DEFAULT_TOLERANCE_S,
           now: float | None = None) -> bool:
    """True when one offered v1 signature matches and the timestamp is within tolerance either way."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        offered = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False  # an old request replayed, or a sender whose clock is far off
    expected = sign(secret, msg_id, timestamp, body).encode()
    # Bytes, because compare_digest refuses str with non-ASCII characters, which a header may carry.
    return any(hmac.compare_digest(expected, candidate.encode(errors="replace")) for candidate in offered)
