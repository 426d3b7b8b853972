"""The admin API's statistics routes: passed through to the results service, scoped to the caller's tenant."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from pipeline.api.app import create_app
from pipeline.api.stats_routes import PROXIED_ROUTES
from pipeline.config import Settings

ADMIN = {"Authorization": "Bearer adm_test"}
ACME = {"Authorization": "Bearer tok_acme"}


class FakeResults(BaseHTTPRequestHandler):
    """Answers with what it was asked and the token it was asked with; /v1/errors answers 422 as the
    real service does for a bad parameter."""

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        parts = urlsplit(self.path)
        status = 422 if parts.path == "/v1/errors" else 200
        body = {"path": parts.path, "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                "authorization": self.headers.get("authorization")}
        if status == 422:
            body = {"error": {"field": "from", "problem": "is not a time (test)"}}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def results_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeResults)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def client(module_settings: Settings, results_port: int) -> Iterator[TestClient]:
    """One app for the module: its tests only read."""
    tokens = {"adm_test": "*", "tok_acme": "acme"}
    app = create_app(module_settings.model_copy(update={"api_tokens": SecretStr(json.dumps(tokens)),
                                                         "results_port": results_port}))
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.integration
@pytest.mark.parametrize("path", list(PROXIED_ROUTES))
def test_every_route_asks_the_results_service_with_the_same_parameters(client: TestClient, path: str) -> None:
    response = client.get(path, params={"from": "2h", "by": "tenant"}, headers=ADMIN)

    if path == "/v1/errors":
        assert response.status_code == 422 and response.json()["error"]["field"] == "from"
    else:
        assert response.status_code == 200
        assert response.json() == {"path": path, "query": {"from": "2h", "by": "tenant"},
                                   "authorization": ADMIN["Authorization"]}  # the caller's own token


@pytest.mark.integration
def test_a_tenant_token_sees_its_own_tenant_only(client: TestClient) -> None:
    own = client.get("/v1/stats/summary", params={"by": "subscription_id"}, headers=ACME)
    other = client.get("/v1/stats/traffic", params={"tenant": "globex"}, headers=ACME)
    anonymous = client.get("/v1/stats", headers={})

    assert own.json()["query"] == {"by": "subscription_id", "tenant": "acme"}
    assert own.json()["authorization"] == ACME["Authorization"]  # the results service scopes it again
    assert other.status_code == 422 and other.json()["error"]["field"] == "tenant"
    assert anonymous.status_code == 401


@pytest.mark.integration
def test_the_dashboard_is_served_without_a_build_step(client: TestClient) -> None:
    page = client.get("/dashboard", follow_redirects=True)
    script = client.get("/dashboard/dashboard.js")
    chart_library = client.get("/dashboard/vendor/uPlot-1.6.32.iife.min.js")

    assert page.status_code == 200 and "dashboard.js" in page.text
    assert script.status_code == 200 and "window.dashboard" in script.text
    assert chart_library.status_code == 200 and "uPlot" in chart_library.text[:200]
