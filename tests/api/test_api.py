"""The admin API against the real broker: what it writes is what the compacted topic holds."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.config import Settings
from pipeline.subscriptions.snapshot import read_snapshot


@pytest.mark.integration
def test_subscriptions_crud_over_http(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        created = client.post("/v1/subscriptions", json={
            "name": "orders", "url": "https://example.test/hook", "event_types": ["order.*"], "tenant": "acme"})
        assert created.status_code == 201
        body = created.json()
        assert body["secret"].startswith("whsec_")  # shown once, on creation
        subscription_id = body["id"]

        listed = client.get("/v1/subscriptions").json()["data"]
        assert [s["id"] for s in listed] == [subscription_id]
        assert "secret" not in listed[0]
        assert "secret" not in client.get(f"/v1/subscriptions/{subscription_id}").json()

        paused = client.patch(f"/v1/subscriptions/{subscription_id}", json={"active": False})
        assert paused.status_code == 200 and paused.json()["active"] is False
        stored = read_snapshot(settings)[subscription_id]
        assert stored.active is False and stored.secret == body["secret"]

        assert client.delete(f"/v1/subscriptions/{subscription_id}").status_code == 204
        assert client.get(f"/v1/subscriptions/{subscription_id}").status_code == 404
        assert subscription_id not in read_snapshot(settings)


@pytest.mark.integration
@pytest.mark.parametrize("fields, field", [
    ({"name": "x", "url": "http://", "event_types": ["*"]}, "url"),
    ({"name": "x", "url": "https://example.test/h", "event_types": ["*"], "colour": "red"}, "colour"),
    ({"url": "https://example.test/h", "event_types": ["*"]}, "name"),
])
def test_bad_input_names_the_field_and_writes_nothing(settings: Settings, fields: dict, field: str) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/subscriptions", json=fields)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == field
    assert read_snapshot(settings) == {}


@pytest.mark.integration
def test_stats_say_when_the_results_service_is_down(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/stats")
    assert response.status_code == 503
    assert "results service" in response.json()["detail"]
