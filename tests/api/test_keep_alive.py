"""The admin API, run as `make run` runs it, keeps an idle connection open longer than an HTTP
client pools one: at equal times (uvicorn's default and httpx's are both 5 s) a client's next
request meets the server's close, and the client gets a reset for a request it cannot tell was
carried out."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from tests.polling import answers, wait_until
from tests.stages import logs_on_failure, running_stages

pytestmark = pytest.mark.integration
CLIENT_POOL_EXPIRY_S = 5.0  # httpx's default keepalive_expiry



def test_an_idle_connection_outlives_an_http_clients_pool(settings: Settings, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_stages(settings, ["pipeline.api"], logs), logs_on_failure(logs):
        wait_until(lambda: answers(f"http://127.0.0.1:{settings.api_port}/healthz"), timeout_s=60, what="the admin API")
        with socket.create_connection(("127.0.0.1", settings.api_port)) as connection:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            quiet_until = time.monotonic() + CLIENT_POOL_EXPIRY_S + 1.5
            while (left := quiet_until - time.monotonic()) > 0:
                connection.settimeout(left)
                try:
                    chunk = connection.recv(65536)
                except TimeoutError:
                    break
                assert chunk, f"the API closed an idle connection within {CLIENT_POOL_EXPIRY_S + 1.5:.1f} s"
                received += chunk
    assert received.startswith(b"HTTP/1.1 200")
