"""The real pipeline (router, dispatcher, results service as processes) against scripted receivers.

First the results service's ClickHouse is unreachable: every delivery still happens and the
results wait in Kafka. Then the service starts on a reachable store: every aggregate matches
what the receivers saw, exactly.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline.devstack.ports import free_port
from pipeline.kafka.offsets import watermarks
from pipeline.producer import EventPublisher
from pipeline.results import client
from pipeline.results.sink import results_group_id
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.snapshot import read_snapshot
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.tokens import client_token
from pipeline.topics import TopicNames
from tests.polling import wait_until
from tests.results.endpoints import TIMEOUT, ScriptedEndpoints
from tests.stages import logs_on_failure, running_stages

pytestmark = pytest.mark.integration

HTTP_OUTCOMES = ("success", "http_error", "timeout")  # attempts that reached an endpoint
# Long enough that only the scripted slow answer times out, even on a loaded 2-core machine.
SLOW_TIMEOUT_MS = 1500
EXPECTED_REQUESTS = {"/ok": 20, "/notfound": 6, "/flaky": 9, "/slow": 2}  # see _subscribe and _publish


def test_deliveries_go_on_while_clickhouse_is_down_and_every_aggregate_matches_the_receivers(kafka_settings, tmp_path):
    settings = kafka_settings.model_copy(update={
        "data_dir": tmp_path / "data", "results_port": free_port(), "delivery_timeout_s": 2.0,
        "retry_schedule_s": (0.0, 0.2, 0.4, 0.6), "clickhouse_dsn": f"http://127.0.0.1:{free_port()}"})
    script = ScriptedEndpoints(slow_s=SLOW_TIMEOUT_MS * 3 / 1000)
    base = script.start()
    logs = tmp_path / "logs"
    try:
        subscriptions = _subscribe(settings, base)
        with running_stages(settings, ["pipeline.router", "pipeline.dispatcher", "pipeline.results"], logs / "down"):
            published = _publish(settings)
            _wait(lambda: script.counts() == EXPECTED_REQUESTS, logs, "every delivery")
            down = _results_while_down(settings)
        up = settings.model_copy(update={"clickhouse_dsn": f"chdb://{tmp_path / 'clickhouse'}"})
        with running_stages(up, ["pipeline.results"], logs / "up"):
            answers = _answers_when_stored(up, subscriptions["/ok"], logs)
    finally:
        script.stop()

    assert down["status"] == 503 and "cannot reach ClickHouse" in down["error"]["problem"]
    assert down["committed"] == 0 and down["waiting"] >= sum(EXPECTED_REQUESTS.values())  # all waiting in Kafka
    _assert_matches_the_endpoints(answers, script, subscriptions)
    totals = {(row["outcome"], row["reason"]): row["decisions"] for row in answers["routing"]["totals"]}
    assert totals == {("routed", ""): len(published) - 4, ("dropped", "no_match"): 4}


def _answers_when_stored(settings, ok_subscription: str, logs) -> dict[str, dict]:
    base_url, token = f"http://127.0.0.1:{settings.results_port}", client_token(settings)
    _wait(lambda: (_stored(base_url, token) or 0) >= sum(EXPECTED_REQUESTS.values()) and _all_read(settings), logs,
          "every attempt stored")
    return {
        "summary": client.fetch(base_url, "/v1/stats/summary", {"from": "-1h", "by": "subscription_id"}, token=token),
        "last": client.fetch(base_url, "/v1/attempts", {"subscription_id": ok_subscription}, token=token),
        "errors": client.fetch(base_url, "/v1/errors", {"from": "-1h"}, token=token),
        "routing": client.fetch(base_url, "/v1/stats/routing", {"from": "-1h"}, token=token),
    }


def _assert_matches_the_endpoints(answers: dict[str, dict], script: ScriptedEndpoints, subscriptions: dict) -> None:
    rows = {row["key"]: row for row in answers["summary"]["rows"]}
    for path, seen in script.answers.items():
        row = rows[subscriptions[path]]
        statuses = Counter("none" if answer == TIMEOUT else f"{answer[0]}xx" for _, answer in seen)
        assert sum(row["outcomes"].get(outcome, 0) for outcome in HTTP_OUTCOMES) == len(seen), path
        assert {k: v for k, v in row["statuses"].items() if v and k != "none"} == \
            {k: v for k, v in statuses.items() if k != "none"}, path
        assert row["outcomes"].get("timeout", 0) == statuses["none"], path
        assert row["succeeded"] == sum(answer.startswith("2") for _, answer in seen), path
    assert rows[subscriptions["/flaky"]]["succeeded_on_retry"] == 3  # each flaky event: 500, 503, then delivered
    assert rows[subscriptions["/slow"]]["succeeded_on_retry"] == 1
    notfound = rows[subscriptions["/notfound"]]  # three events, two 404s each, then dead-lettered
    assert (notfound["attempts"], notfound["failed"], notfound["dead_lettered"]) == (6, 6, 3)
    assert sum(row["dead_lettered"] for row in rows.values()) == 3
    received_ok = {event_id for event_id, _ in script.answers["/ok"]}
    last = answers["last"]["attempts"]
    assert len(last) == 10 and {attempt["event_id"] for attempt in last} <= received_ok
    reasons = {(r["outcome"], r["status_code"]): r["attempts"] for r in answers["errors"]["reasons"]}
    assert (reasons[("http_error", 404)], reasons[("http_error", 500)], reasons[("http_error", 503)]) == (6, 3, 3)
    assert reasons[("timeout", None)] == 1
    assert reasons[("dead_lettered", None)] == 3  # one per dead-lettered event, not an HTTP attempt


def _subscribe(settings, base: str) -> dict[str, str]:
    commands = SubscriptionCommands(SubscriptionWriter(settings), lambda i: read_snapshot(settings).get(i))
    plans = {"/ok": {}, "/notfound": {"retry_schedule_s": [0, 0.1]}, "/flaky": {},
             "/slow": {"timeout_ms": SLOW_TIMEOUT_MS}}
    created = {}
    for path, extra in plans.items():
        fields = {"name": path[1:], "url": f"{base}{path}", "event_types": [f"{path[1:]}.*"]} | extra
        created[path] = commands.create(fields).id
    return created


def _publish(settings) -> list[str]:
    counts = {"ok": 20, "notfound": 3, "flaky": 3, "slow": 1, "nobody": 4}
    with EventPublisher(settings) as publisher:
        ids = [publisher.publish_fields(type=f"{kind}.happened", data=json.dumps({"n": n}).encode(),
                                        ordering_key=uuid.uuid4().hex).id
               for kind, count in counts.items() for n in range(count)]
        publisher.flush()
    return ids


def _results_while_down(settings) -> dict:
    """What the results service answers while its ClickHouse is unreachable (it must be up meanwhile)."""
    base_url = f"http://127.0.0.1:{settings.results_port}"
    wait_until(lambda: client.is_healthy(base_url), timeout_s=60, what="the results service to answer")
    # The endpoints answered before the dispatcher wrote the last records: wait for those to be in Kafka.
    wait_until(lambda: sum(_positions(settings)[1]) >= sum(EXPECTED_REQUESTS.values()), timeout_s=30,
               what="every attempt record in Kafka")
    response = httpx.get(f"{base_url}/v1/stats", timeout=10,
                         headers={"Authorization": f"Bearer {client_token(settings)}"})
    committed, ends = _positions(settings)
    return {"status": response.status_code, "error": response.json().get("error", ""), "committed": sum(committed),
            "waiting": sum(ends)}


def _all_read(settings) -> bool:
    """Whether the results sink has committed everything on the results topic."""
    committed, ends = _positions(settings)
    return committed == ends


def _positions(settings) -> tuple[list[int], list[int]]:
    """The results sink's committed offsets and the results topic's end offsets, per partition."""
    topic = TopicNames.from_settings(settings).results
    reader = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": results_group_id(settings)})
    try:
        partitions = [TopicPartition(topic, n) for n in range(settings.results_partitions)]
        ends = [watermarks(reader, partition)[1] for partition in partitions]
        return [max(p.offset, 0) for p in reader.committed(partitions, timeout=10)], ends
    finally:
        reader.close()


def _stored(base_url: str, token: str) -> int | None:
    try:
        return client.count_attempts(base_url, token=token, timeout_s=5)
    except Exception:  # still starting
        return None


def _wait(condition, logs, what: str) -> None:
    with logs_on_failure(logs / "down", logs / "up"):
        wait_until(condition, timeout_s=90, what=what)
