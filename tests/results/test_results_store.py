"""The results store on embedded chdb: schema, inserts, statistics and counts."""

from __future__ import annotations

import pytest

from pipeline.codec import codec
from pipeline.errors import InvalidInput
from pipeline.results.store import ResultsStore, attempt_columns, check_storable


@pytest.fixture
def known_attempts(attempt):
    """sub_a: 100 attempts of 1..100 ms, every tenth a timeout; sub_b: two connection errors."""
    sub_a = [
        attempt("sub_a", latency_ms=float(ms), seconds_later=ms, **_failure_fields(ms % 10 == 0))
        for ms in range(1, 101)
    ]
    sub_b = [
        attempt("sub_b", outcome="connection_error", status_code=None, latency_ms=3.0, seconds_later=-60),
        attempt("sub_b", outcome="connection_error", status_code=None, latency_ms=5.0, seconds_later=-30),
    ]
    return sub_a + sub_b


def _failure_fields(failed: bool) -> dict:
    return {"outcome": "timeout", "status_code": None} if failed else {}


def test_table_has_one_column_per_schema_field_with_the_chosen_types(store):
    types = store.column_types()

    kafka_only = {"intent", "timeout_ms"}  # an attempt's intent: what the sink reads, not what it stores
    assert list(types) == [field["name"] for field in codec("delivery_attempt").schema["fields"]
                           if field["name"] not in kafka_only]
    assert types["started_at"] == "DateTime64(6, 'UTC')"
    assert types["event_time"] == "DateTime64(3, 'UTC')"
    assert types["status_code"] == "Nullable(UInt16)"
    assert types["latency_ms"] == "Float64"
    assert {types[name] for name in ("outcome", "event_type", "endpoint_host")} == {"LowCardinality(String)"}


def test_stats_per_subscription(store, known_attempts):
    store.insert_attempts(known_attempts)

    sub_a, sub_b = store.stats()

    assert (sub_a["subscription_id"], sub_a["attempts"], sub_a["delivered"], sub_a["failed"]) == ("sub_a", 100, 90, 10)
    assert sub_a["p50_ms"] == pytest.approx(50.5, rel=0.02)
    assert sub_a["p99_ms"] == pytest.approx(99.0, rel=0.02)
    assert sub_a["last_attempt_at"] == max(r["started_at"] for r in known_attempts if r["subscription_id"] == "sub_a")
    assert (sub_b["attempts"], sub_b["delivered"], sub_b["failed"]) == (2, 0, 2)
    assert sub_b["p50_ms"] == pytest.approx(4.0)
    assert sub_b["last_attempt_at"] == known_attempts[-1]["started_at"]


def test_stats_of_one_subscription(store, known_attempts):
    store.insert_attempts(known_attempts)

    assert [row["subscription_id"] for row in store.stats("sub_b")] == ["sub_b"]
    assert store.stats("sub_unknown") == []


def test_counts_filter_by_subscription_and_outcome(store, known_attempts):
    store.insert_attempts(known_attempts)

    assert store.count_attempts() == 102
    assert store.count_attempts(subscription_id="sub_a") == 100
    assert store.count_attempts(outcome="timeout") == 10
    assert store.count_attempts(subscription_id="sub_b", outcome="connection_error") == 2
    assert store.count_attempts(subscription_id="sub_b", outcome="success") == 0


def test_dead_lettered_rows_are_not_counted_as_attempts(store, attempt):
    store.insert_attempts([attempt("sub_a"), attempt("sub_a", outcome="dead_lettered", status_code=None, latency_ms=0.0)])

    assert store.count_attempts() == 1
    assert store.count_attempts(outcome="dead_lettered") == 1
    (row,) = store.stats("sub_a")
    assert (row["attempts"], row["delivered"], row["failed"], row["dead_lettered"]) == (1, 1, 0, 1)


def test_filters_are_bound_parameters_not_sql(store, attempt):
    tricky = "sub' OR '1'='1"
    store.insert_attempts([attempt(tricky), attempt("sub_other")])

    assert store.count_attempts(subscription_id=tricky) == 1
    assert [row["subscription_id"] for row in store.stats(tricky)] == [tricky]


def test_create_schema_again_keeps_the_rows(store, attempt):
    store.insert_attempts([attempt(), attempt()])

    store.create_schema()

    assert store.count_attempts() == 2


def test_inserting_no_records_is_a_no_op(store):
    store.insert_attempts([])

    assert store.count_attempts() == 0


def test_a_decoded_record_round_trips_with_null_status_and_microseconds(store, attempt):
    original = attempt(outcome="timeout", status_code=None)
    decoded = codec("delivery_attempt").decode(codec("delivery_attempt").encode(original))

    store.insert_attempts([check_storable(decoded)])

    [row] = store.stats()
    assert row["last_attempt_at"] == original["started_at"]
    assert row["last_attempt_at"].microsecond == original["started_at"].microsecond != 0
    assert store.count_attempts(outcome="timeout") == 1


def test_check_storable_refuses_what_the_table_cannot_hold(attempt):
    with pytest.raises(InvalidInput) as out_of_range:
        check_storable(attempt(status_code=70_000))
    with pytest.raises(InvalidInput) as missing:
        check_storable({name: None for name in attempt_columns() if name != "outcome"})

    assert out_of_range.value.field == "status_code"
    assert missing.value.field == "outcome"
    assert check_storable(attempt(status_code=None))["status_code"] is None


def test_database_name_must_be_an_identifier(chdb_dsn):
    with pytest.raises(InvalidInput) as bad_name:
        ResultsStore(chdb_dsn, "webhooks; DROP TABLE x")

    assert bad_name.value.field == "clickhouse_database"
