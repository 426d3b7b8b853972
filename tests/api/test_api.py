"""The admin API against the real broker: what it writes is what the compacted topic holds."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from pydantic import SecretStr

from pipeline.api.app import create_app
from pipeline.config import Settings
from pipeline.kafka.offsets import watermarks
from pipeline.models import new_secret
from pipeline.subscriptions.snapshot import read_snapshot
from pipeline.topics import TopicNames

ADMIN = {"Authorization": "Bearer adm_test"}
ACME = {"Authorization": "Bearer tok_acme"}
GLOBEX = {"Authorization": "Bearer tok_globex"}
HOOK = {"url": "https://example.test/hook", "event_types": ["order.*"]}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    tokens = {"adm_test": "*", "tok_acme": "acme", "tok_globex": "globex"}
    app = create_app(settings.model_copy(update={"api_tokens": SecretStr(json.dumps(tokens))}))
    with TestClient(app) as test_client:
        yield test_client


def end_offset(settings: Settings) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "offsets"})
    try:
        return watermarks(consumer, TopicPartition(TopicNames.from_settings(settings).subscriptions, 0))[1]
    finally:
        consumer.close()


@pytest.mark.integration
def test_subscriptions_crud_over_http(client: TestClient, settings: Settings) -> None:
    created = client.post("/v1/subscriptions", json={"name": "orders", "tenant": "acme", **HOOK}, headers=ADMIN)
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")  # shown once, on creation
    subscription_id = body["id"]

    listed = client.get("/v1/subscriptions", headers=ADMIN).json()["data"]
    assert [s["id"] for s in listed] == [subscription_id]
    assert "secret" not in listed[0] and "secret" not in client.get(
        f"/v1/subscriptions/{subscription_id}", headers=ADMIN).json()

    assert client.post(f"/v1/subscriptions/{subscription_id}/pause", headers=ADMIN).json()["active"] is False
    stored = read_snapshot(settings)[subscription_id]
    assert stored.active is False and stored.secret == body["secret"]
    assert client.post(f"/v1/subscriptions/{subscription_id}/resume", headers=ADMIN).json()["active"] is True

    assert client.delete(f"/v1/subscriptions/{subscription_id}", headers=ADMIN).status_code == 204
    assert client.get(f"/v1/subscriptions/{subscription_id}", headers=ADMIN).status_code == 404
    assert subscription_id not in read_snapshot(settings)


@pytest.mark.integration
def test_credentials_never_appear_in_lists_views_or_answers(client: TestClient) -> None:
    headers = {"x-api-key": "k3y-value", "X-Session-Token": "t0k-value", "x-team": "billing", "content-type": None}
    basic = client.post("/v1/subscriptions", headers=ADMIN, json={
        "name": "basic", "auth": {"type": "basic", "username": "ada", "password": "pa55-value"}, "headers": headers,
        **HOOK})
    bearer = client.post("/v1/subscriptions", headers=ADMIN, json={
        "name": "bearer", "auth": {"type": "bearer", "token": "bear3r-value"}, **HOOK})
    assert basic.status_code == bearer.status_code == 201
    patched = client.patch(f"/v1/subscriptions/{bearer.json()['id']}", headers=ADMIN,
                           json={"headers": {"authorization-extra": "Bearer extra-value"}})
    answers = [basic, bearer, patched, client.get("/v1/subscriptions", headers=ADMIN),
               *(client.get(f"/v1/subscriptions/{answer.json()['id']}", headers=ADMIN) for answer in (basic, bearer))]
    text = json.dumps([answer.json() for answer in answers])
    for credential in ("pa55-value", "bear3r-value", "k3y-value", "t0k-value", "extra-value"):
        assert credential not in text
    shown = client.get(f"/v1/subscriptions/{basic.json()['id']}", headers=ADMIN).json()
    assert shown["auth"] == {"type": "basic", "username": "ada"}
    assert shown["headers"] == {"x-api-key": "***", "X-Session-Token": "***", "x-team": "billing",
                                "content-type": None}


@pytest.mark.integration
def test_every_route_needs_a_token(client: TestClient) -> None:
    assert client.get("/v1/subscriptions").status_code == 401
    assert client.get("/v1/subscriptions", headers={"Authorization": "Bearer wrong"}).status_code == 401


@pytest.mark.integration
def test_a_tenant_token_sees_and_changes_only_its_own_tenant(client: TestClient, settings: Settings) -> None:
    mine = client.post("/v1/subscriptions", json={"name": "mine", **HOOK}, headers=ACME).json()
    theirs = client.post("/v1/subscriptions", json={"name": "theirs", **HOOK}, headers=GLOBEX).json()
    assert mine["tenant"] == "acme" and theirs["tenant"] == "globex"
    assert [s["id"] for s in client.get("/v1/subscriptions", headers=ACME).json()["data"]] == [mine["id"]]
    for method, path in [("get", ""), ("patch", ""), ("delete", ""), ("post", "/pause"), ("post", "/rotate-secret"),
                         ("post", "/test")]:
        kwargs = {"json": {"name": "stolen"}} if method == "patch" else {}
        response = getattr(client, method)(f"/v1/subscriptions/{theirs['id']}{path}", headers=ACME, **kwargs)
        assert response.status_code == 404, (method, path)
    assert read_snapshot(settings)[theirs["id"]].name == "theirs"
    refused = client.post("/v1/subscriptions", json={"name": "x", "tenant": "globex", **HOOK}, headers=ACME)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "tenant"
    assert len(client.get("/v1/subscriptions", headers=ADMIN).json()["data"]) == 2


@pytest.mark.integration
def test_rotation_keeps_the_old_secret_signing_for_the_overlap(client: TestClient, settings: Settings) -> None:
    created = client.post("/v1/subscriptions", json={"name": "r", **HOOK}, headers=ADMIN).json()
    rotated = client.post(f"/v1/subscriptions/{created['id']}/rotate-secret", headers=ADMIN).json()
    assert rotated["secret"] != created["secret"]
    stored = read_snapshot(settings)[created["id"]]
    assert stored.signing_secrets() == [rotated["secret"], created["secret"]]


@pytest.mark.integration
@pytest.mark.parametrize("changes, field", [
    ({"secret": new_secret()}, "secret"),
    ({"previous_secrets": []}, "previous_secrets"),
    ({"name": "renamed", "secret": new_secret()}, "secret"),
])
def test_an_update_cannot_replace_the_secret_without_the_overlap(client: TestClient, settings: Settings,
                                                                 changes: dict, field: str) -> None:
    created = client.post("/v1/subscriptions", json={"name": "r", **HOOK}, headers=ADMIN).json()
    before = end_offset(settings)
    response = client.patch(f"/v1/subscriptions/{created['id']}", json=changes, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field and "rotate-secret" in response.json()["error"]["problem"]
    assert end_offset(settings) == before  # nothing written
    stored = read_snapshot(settings)[created["id"]]
    assert (stored.name, stored.signing_secrets()) == ("r", [created["secret"]])


@pytest.mark.integration
@pytest.mark.parametrize("fields, field", [
    ({"name": "x", "url": "http://", "event_types": ["*"]}, "url"),
    ({"name": "x", "url": "https://example.test/h", "event_types": ["*"], "colour": "red"}, "colour"),
    ({"url": "https://example.test/h", "event_types": ["*"]}, "name"),
    ({"name": "x", "method": "DELETE", **HOOK}, "method"),
    ({"name": "x", "filter": {"data.a": {"$near": 1}}, **HOOK}, "filter"),
    ({"name": "x", "template": {"v": "{{ data.a"}, **HOOK}, "template"),
    ({"name": "x", "headers": {"x-evil": "a\r\nb: c"}, **HOOK}, "headers"),
    ({"name": "x", "auth": {"type": "basic", "username": "u"}, **HOOK}, "auth"),
    ({"name": "x", "body_format": "json-rpc", **HOOK}, "rpc_method"),
])
def test_bad_input_names_the_field_and_writes_nothing(client: TestClient, settings: Settings, fields: dict,
                                                      field: str) -> None:
    response = client.post("/v1/subscriptions", json=fields, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["field"].split(".")[0] == field
    assert read_snapshot(settings) == {}


@pytest.mark.integration
def test_stats_say_when_the_results_service_is_down(client: TestClient) -> None:
    response = client.get("/v1/stats", headers=ADMIN)
    assert response.status_code == 503
    assert response.json()["error"]["field"] is None and "results service" in response.json()["error"]["problem"]


def error_of(response, status: int) -> dict:
    """The API's one error shape: {"error": {"field", "problem"}} and nothing else."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"field", "problem"}, body
    return body["error"]


@pytest.mark.integration
@pytest.mark.parametrize("body, problem", [
    (b'{"name": "x", "url": ', "is not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"", "is required: a JSON object"),
])
def test_a_body_that_is_not_a_json_object_gets_the_apis_own_error(client: TestClient, body: bytes,
                                                                   problem: str) -> None:
    response = client.post("/v1/subscriptions", content=body, headers=ADMIN | {"content-type": "application/json"})
    error = error_of(response, 422)
    assert error["field"] == "body" and problem in error["problem"]


@pytest.mark.integration
def test_every_other_error_has_the_apis_own_shape_too(client: TestClient) -> None:
    wrong_type = client.get("/v1/subscriptions", params={"active": "maybe"}, headers=ADMIN)
    assert error_of(wrong_type, 422)["field"] == "active"
    refused = client.get("/v1/subscriptions")
    assert error_of(refused, 401)["field"] == "authorization" and refused.headers["www-authenticate"] == "Bearer"
    assert error_of(client.post("/v1/recover", json={"since": "1h"}, headers=ACME), 403)["field"] == "authorization"
    assert error_of(client.get("/v1/nothing-here", headers=ADMIN), 404)["field"] is None
    assert error_of(client.put("/v1/subscriptions", headers=ADMIN), 405)["field"] is None
    assert error_of(client.get("/v1/subscriptions/sub_missing", headers=ADMIN), 404)["field"] == "id"
    numeric = client.post("/v1/subscriptions", json={"name": "x", "url": "http://2130706433/", "event_types": ["*"]},
                          headers=ADMIN)
    assert error_of(numeric, 422)["field"] == "url"


@pytest.mark.integration
def test_changes_carry_the_version_and_if_match_refuses_a_stale_one(client: TestClient, settings: Settings) -> None:
    created = client.post("/v1/subscriptions", json={"name": "v", **HOOK}, headers=ADMIN)
    subscription_id = created.json()["id"]
    assert (created.json()["version"], created.headers["etag"]) == (1, '"1"')
    path = f"/v1/subscriptions/{subscription_id}"
    assert client.get(path, headers=ADMIN).headers["etag"] == '"1"'
    renamed = client.patch(path, json={"name": "renamed"}, headers=ADMIN | {"If-Match": '"1"'})
    assert (renamed.status_code, renamed.json()["version"], renamed.headers["etag"]) == (200, 2, '"2"')

    before = end_offset(settings)
    for method, suffix, kwargs in [("patch", "", {"json": {"name": "stale"}}), ("post", "/pause", {}),
                                   ("post", "/rotate-secret", {}), ("delete", "", {})]:
        stale = getattr(client, method)(path + suffix, headers=ADMIN | {"If-Match": '"1"'}, **kwargs)
        error = error_of(stale, 412)
        assert error["field"] == "If-Match" and "version 2" in error["problem"], (method, suffix)
    assert end_offset(settings) == before  # nothing written
    not_a_version = client.patch(path, json={"name": "x"}, headers=ADMIN | {"If-Match": "two"})
    assert error_of(not_a_version, 422)["field"] == "If-Match"

    paused = client.post(f"{path}/pause", headers=ADMIN | {"If-Match": 'W/"2"'})
    rotated = client.post(f"{path}/rotate-secret", headers=ADMIN | {"If-Match": "*"})
    assert (paused.json()["version"], rotated.json()["version"], rotated.headers["etag"]) == (3, 4, '"4"')
    stored = read_snapshot(settings)[subscription_id]
    assert (stored.version, stored.name, stored.active) == (4, "renamed", False)
    assert stored.secret == rotated.json()["secret"]
    assert client.delete(path, headers=ADMIN | {"If-Match": '"4"'}).status_code == 204


@pytest.mark.integration
def test_a_long_list_comes_in_pages(client: TestClient) -> None:
    created = [client.post("/v1/subscriptions", json={"name": f"s{n}", **HOOK}, headers=ADMIN).json()["id"]
               for n in range(5)]
    first = client.get("/v1/subscriptions", params={"limit": 2}, headers=ADMIN).json()
    assert [s["id"] for s in first["data"]] == created[:2] and first["has_more"]
    rest = client.get("/v1/subscriptions", params={"limit": 10, "cursor": first["next_cursor"]}, headers=ADMIN).json()
    assert [s["id"] for s in rest["data"]] == created[2:] and not rest["has_more"] and rest["next_cursor"] is None
    refused = client.get("/v1/subscriptions", params={"cursor": "nonsense"}, headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "cursor"
