"""Certificate verification for deliveries: always on; a subscription may name its own CA bundle.

A CA bundle (PEM text) replaces the system trust store for that subscription's requests: its
endpoint's certificate must chain to one of the bundle's certificates, and the host name (or IP)
must match as usual. Contexts are cached by the SHA-256 of the PEM, so the same bundle always
gives the same context object, which is also what keeps pooled connections shared.
"""

from __future__ import annotations

import hashlib
import ssl
from collections import OrderedDict

MAX_CACHED_CONTEXTS = 256


def bundle_key(pem: str) -> str:
    return hashlib.sha256(pem.encode()).hexdigest()


class CaContexts:
    """Verifying SSL contexts, one per CA bundle, least recently used dropped past `max_size`."""

    def __init__(self, max_size: int = MAX_CACHED_CONTEXTS):
        self.max_size = max_size
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()

    def get(self, pem: str) -> ssl.SSLContext:
        """The context trusting exactly the certificates in `pem`; ValueError if it holds none."""
        key = bundle_key(pem)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = _verifying_context(pem)
            while len(self._contexts) > self.max_size:
                self._contexts.popitem(last=False)
        self._contexts.move_to_end(key)
        return context


def _verifying_context(pem: str) -> ssl.SSLContext:
    try:
        # With cadata, create_default_context loads only these, not the system store.
        context = ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"the CA bundle is not usable PEM certificates: {exc}") from exc
    if not context.get_ca_certs():
        raise ValueError("the CA bundle holds no certificate")
    return context


def is_tls_failure(exc: BaseException) -> bool:
    """Whether an exception was caused, anywhere down its chain, by TLS (handshake or verification)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
