"""Secrets planted through the admin API, then searched for everywhere the pipeline writes: every
topic, every stage's log, every ClickHouse table, the results service's and the CLI's answers.

The stages run as `make run` runs them: no PIPELINE_API_TOKENS, so the API, the results service
and the CLI share the admin token made once in the data directory. One endpoint answers 204,
one 410 (disabled, with an operator event), one 500 (dead-lettered after its one attempt).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app as cli
from pipeline.config import Settings
from pipeline.kafka.admin import admin_client
from pipeline.producer import EventPublisher
from pipeline.receiver import ReceivedDelivery, Receiver
from pipeline.tokens import local_admin_token
from tests.conftest import stage_env
from tests.polling import wait_until
from tests.stages import logs_on_failure, running_stages
from tests.topics import every_record

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"pl4nted-signing-key-0123456789").decode()
BASIC_PASSWORD, BEARER, API_KEY = "pl4nted-basic-pw", "pl4nted-bearer", "pl4nted-api-key"
URL_PASSWORD = "pl4nted-url-pw"
PIN = "pl4nted-pin-4711"  # a header whose name says nothing: shown to its owner, sealed at rest
STATUS = {"/ok": 204, "/gone": 410, "/fail": 500}
DUMP_TABLES = """
import sys
from pipeline.results.store import ResultsStore
store = ResultsStore(sys.argv[1], sys.argv[2])
names = store.client.query("SELECT name FROM system.tables WHERE database = {db:String}",
                           parameters={"db": sys.argv[2]}).result_rows
for (name,) in names:  # as text: rollups hold aggregate states no client decodes
    print(name, store.client.raw_query(f"SELECT * FROM `{sys.argv[2]}`.`{name}` FORMAT TSV").decode("latin-1"))
store.close()
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver(respond=lambda delivery: STATUS.get(delivery.path, 204))
    endpoint.start()
    yield endpoint
    endpoint.stop()


def credentials(rotated_secret: str) -> list[str]:
    """Every credential planted, and the forms it travels in."""
    secrets = [SECRET, rotated_secret, BASIC_PASSWORD, BEARER, API_KEY, URL_PASSWORD]
    keys = [secret.removeprefix("whsec_") for secret in (SECRET, rotated_secret)]
    return secrets + keys + [base64.b64encode(f"ada:{BASIC_PASSWORD}".encode()).decode()]


def test_planted_secrets_appear_in_no_topic_log_table_or_answer(settings: Settings, receiver: Receiver,
                                                                tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_stages(settings, ["pipeline.router", "pipeline.dispatcher", "pipeline.results", "pipeline.api"],
                        logs):
        with logs_on_failure(logs):
            answers, rotated_secret = _plant_and_deliver(settings, receiver)
            answers.append(_cli_answers(settings))
    planted = credentials(rotated_secret)
    sealed_only = [PIN]
    found = {
        "answers": "\n".join(answers),
        "logs": "\n".join(path.read_text(errors="replace") for path in sorted(logs.glob("*.log"))),
        "tables": _tables(settings),
        **{topic: b"\n".join(record.bytes() for record in every_record(settings, topic)).decode("latin-1")
           for topic in _topics(settings)},
    }
    assert "Bearer ***" in found["tables"] and "dead_lettered" in found["tables"]  # the search is not vacuous
    assert "pipeline.subscription.disabled" in found[f"{settings.topic_prefix}events"]
    leaks = {(where, value) for where, text in found.items() for value in planted + sealed_only if value in text}
    assert leaks == set()


def _plant_and_deliver(settings: Settings, receiver: Receiver) -> tuple[list[str], str]:
    """Subscriptions made through the API with every kind of credential, events delivered to them;
    the answers of the API and the results service, and the rotated secret."""
    api = httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=30,
                       headers={"Authorization": f"Bearer {local_admin_token(settings.data_dir)}"})
    wait_until(lambda: _answers(api, "/healthz"), what="the admin API")
    kind = f"t{uuid.uuid4().hex[:8]}"
    refused = api.post("/v1/subscriptions", json={"name": "url", "url": f"https://ada:{URL_PASSWORD}@example.com/",
                                                   "event_types": ["*"]})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "url"
    made = [_create(api, f"{receiver.base_url}{path}", f"{kind}.{path[1:]}", fields) for path, fields in (
        ("/ok", {"secret": SECRET, "auth": {"type": "basic", "username": "ada", "password": BASIC_PASSWORD},
                 "headers": {"x-api-key": API_KEY, "x-pin": PIN}}),
        ("/gone", {"auth": {"type": "bearer", "token": BEARER}}),
        ("/fail", {"retry_schedule_s": [0], "headers": {"X-Api-Key": API_KEY}}))]
    rotated = api.post(f"/v1/subscriptions/{made[0]}/rotate-secret").json()["secret"]
    with EventPublisher(settings) as publisher:
        for path in STATUS:
            publisher.publish_fields(type=f"{kind}.{path[1:]}", data=b'{"n": 1}')
    ok = wait_until(lambda: receiver.by_path("/ok"), what="the delivery to /ok")
    _assert_sent_with_the_credentials(ok[0])
    results = httpx.Client(base_url=f"http://127.0.0.1:{settings.results_port}", headers=api.headers, timeout=30)
    attempts = wait_until(lambda: len(rows := results.get("/v1/attempts", params={"limit": 50}).json()["attempts"])
                          >= 3 and rows, what="an attempt row of each subscription")
    assert {row["subscription_id"] for row in attempts} == set(made)
    wait_until(lambda: results.get("/v1/attempts/count", params={"outcome": "dead_lettered"}).json()["count"],
               what="the dead letter of /fail stored")
    events = f"{settings.topic_prefix}events"
    wait_until(lambda: any(b"pipeline.subscription.disabled" in (record.value or b"")
                           for record in every_record(settings, events)), what="the operator event of /gone disabled")
    answers = [json.dumps(attempts), results.get("/v1/errors", params={"from": "1h"}).text,
               api.get("/v1/attempts", params={"limit": 50}).text, api.get("/v1/errors").text]
    listed = api.get("/v1/subscriptions").text
    assert PIN in listed  # its owner sees it; the credentials are masked
    return answers + [listed.replace(PIN, "")], rotated


def _create(api: httpx.Client, url: str, event_type: str, fields: dict) -> str:
    created = api.post("/v1/subscriptions", json={"name": event_type, "url": url, "event_types": [event_type],
                                                  **fields})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _assert_sent_with_the_credentials(delivery: ReceivedDelivery) -> None:
    """The receiver got them: they went through the pipeline, so a leak would have had the chance."""
    basic = base64.b64encode(f"ada:{BASIC_PASSWORD}".encode()).decode()
    assert (delivery.headers["authorization"], delivery.headers["x-api-key"]) == (f"Basic {basic}", API_KEY)
    assert delivery.headers["x-pin"] == PIN


def _cli_answers(settings: Settings) -> str:
    """`pipeline stats last --headers` and `pipeline subscriptions list`, with the local admin token."""
    env = stage_env(settings)
    env.pop("PIPELINE_API_TOKEN", None)
    outputs = []
    for arguments in (["stats", "last", "--headers", "--limit", "50"], ["subscriptions", "list"]):
        result = CliRunner().invoke(cli, arguments, env=env)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert "***" in outputs[0]  # the masked headers were listed
    return "\n".join(outputs)


def _answers(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.HTTPError:
        return False


def _topics(settings: Settings) -> list[str]:
    names = admin_client(settings.kafka_bootstrap_servers).list_topics(timeout=10).topics
    return sorted(name for name in names if name.startswith(settings.topic_prefix))


def _tables(settings: Settings) -> str:
    """Every row of every table of the test's database, read by a process of its own once the
    results service has stopped (embedded ClickHouse lets one process open a directory)."""
    dump = subprocess.run([sys.executable, "-c", DUMP_TABLES, settings.resolved_clickhouse_dsn,
                           settings.clickhouse_database], capture_output=True, text=True, timeout=120,
                          env=stage_env(settings))
    assert dump.returncode == 0, dump.stderr
    return dump.stdout
