"""Free local ports, for a process about to be started here."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now. It may be taken before it is used; that start then fails loudly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
