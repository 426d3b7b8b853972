"""The results service asks for the admin API's tokens and scopes them the same way: no token, no
answer; a tenant's token sees its own tenant's attempts, response bodies and counts only."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from pipeline.results.query_api import bound_port, start_query_server
from pipeline.results.store import AsyncResultsStore

ROUTES = ["/v1/stats", "/v1/stats/traffic", "/v1/stats/summary", "/v1/stats/routing", "/v1/attempts",
          "/v1/errors", "/v1/attempts/count"]


@pytest.fixture
async def two_tenants(store, attempt, tokens):
    """A query server over one failed attempt of acme's and one of globex's."""
    store.insert_attempts([
        attempt("sub_acme", tenant="acme", outcome="http_error", status_code=500, response_body="acme-body"),
        attempt("sub_globex", tenant="globex", outcome="http_error", status_code=500, response_body="globex-body"),
    ])
    async_store = AsyncResultsStore(store)
    runner = await start_query_server(async_store, "127.0.0.1", 0, tokens=tokens)
    yield f"http://127.0.0.1:{bound_port(runner)}"
    await runner.cleanup()
    async_store.release()


async def get(base_url: str, path: str, token: str | None = None, **query: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(base_url + path, params={"from": "1d"} | query, headers=headers)


@pytest.mark.parametrize("path", ROUTES)
async def test_every_route_but_healthz_needs_a_token(two_tenants, path) -> None:
    for token in (None, "not-a-token"):
        refused = await get(two_tenants, path, token)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["field"] == "authorization"
        assert "body" not in refused.text
    assert (await get(two_tenants, "/healthz")).json() == {"ok": True}


async def test_a_tenant_token_sees_its_own_tenant_only(two_tenants, admin_token) -> None:
    answers = await asyncio.gather(*(get(two_tenants, path, "tok_acme") for path in ROUTES))
    assert all(answer.status_code == 200 for answer in answers), [answer.text for answer in answers]
    seen = json.dumps([answer.json() for answer in answers])
    assert "acme-body" in seen and "sub_acme" in seen
    assert "globex" not in seen
    count = await get(two_tenants, "/v1/attempts/count", "tok_acme")
    assert count.json() == {"count": 1}
    everything = await get(two_tenants, "/v1/attempts/count", admin_token)
    assert everything.json() == {"count": 2}


async def test_a_tenant_token_asking_for_another_tenant_is_refused(two_tenants, admin_token) -> None:
    refused = await get(two_tenants, "/v1/attempts", "tok_acme", tenant="globex")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "tenant"
    shown = (await get(two_tenants, "/v1/attempts", admin_token, tenant="globex")).json()["attempts"]
    assert [attempt["subscription_id"] for attempt in shown] == ["sub_globex"]
