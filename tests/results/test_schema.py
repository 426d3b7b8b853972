"""The schema on embedded chdb: migrations applied once, old tables migrated, retention, deduplication."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.results.migrations import load_migrations, split_statements, table_retention_days
from pipeline.results.store import ResultsStore, attempt_columns

ROLLUPS = ("attempts_per_minute", "routing_per_minute")
TABLES = ("delivery_attempts", "routing_decisions") + ROLLUPS


def rollup_attempts(store: ResultsStore) -> int:
    return int(store.client.query("SELECT sum(attempts) FROM attempts_per_minute").result_rows[0][0])


def test_migrations_apply_once_in_order(chdb_dsn, settings):
    store = ResultsStore(chdb_dsn, settings.clickhouse_database)
    try:
        first = store.create_schema()
        again = store.create_schema()
        tables = {row[0] for row in store.client.query("SHOW TABLES").result_rows}
    finally:
        store.close()

    assert first == [migration.version for migration in load_migrations()] == sorted(first)
    assert again == []
    assert set(TABLES) | {"attempts_per_minute_mv", "routing_per_minute_mv", "schema_migrations"} <= tables


def test_a_table_from_before_the_rollups_is_migrated_and_its_rows_counted(chdb_dsn, settings, attempt):
    store = ResultsStore(chdb_dsn, settings.clickhouse_database)
    try:
        with store._without_default_database() as client:  # the table as the first schema made it
            client.command(f"CREATE DATABASE {settings.clickhouse_database}")
        columns = ", ".join(f"{name} {kind}" for name, kind in OLD_COLUMNS)
        store.client.command(f"CREATE TABLE delivery_attempts ({columns}) ENGINE = MergeTree "
                             "PARTITION BY toYYYYMM(started_at) ORDER BY (subscription_id, started_at, attempt_id)")
        old_columns = tuple(name for name, _ in OLD_COLUMNS)  # written as the first schema's code wrote them
        store.insert_rows("delivery_attempts", old_columns, [attempt("sub_old") for _ in range(3)])

        store.create_schema()
        store.insert_attempts([attempt("sub_old")])

        assert rollup_attempts(store) == 4  # the three old rows backfilled, the new one through the view
        assert [row["attempts"] for row in store.stats()] == [4]
        engine = store.client.query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
                                    "AND name = 'delivery_attempts'").result_rows[0][0]
        assert "non_replicated_deduplication_window = 10000" in engine and "toIntervalDay(90)" in engine
    finally:
        store.close()


OLD_COLUMNS = [
    ("attempt_id", "String"), ("event_id", "String"), ("event_type", "LowCardinality(String)"),
    ("event_time", "DateTime64(3, 'UTC')"), ("subscription_id", "String"), ("tenant", "LowCardinality(String)"),
    ("attempt", "UInt16"), ("endpoint_host", "LowCardinality(String)"), ("started_at", "DateTime64(6, 'UTC')"),
    ("latency_ms", "Float64"), ("status_code", "Nullable(UInt16)"), ("outcome", "LowCardinality(String)"),
    ("error", "Nullable(String)"), ("request_bytes", "UInt32"), ("response_bytes", "UInt32"),
    ("response_body", "String"),
]


def test_the_retention_follows_the_setting_and_older_rows_are_not_kept(chdb_dsn, settings, attempt):
    for days in (30, 45):
        store = ResultsStore(chdb_dsn, settings.clickhouse_database, retention_days=days)
        try:
            store.create_schema()
            assert table_retention_days(store.client) == dict.fromkeys(TABLES, days)
        finally:
            store.close()
    store = ResultsStore(chdb_dsn, settings.clickhouse_database, retention_days=45)
    try:
        now = datetime.now(timezone.utc)
        store.insert_attempts([attempt(started_at=now - timedelta(days=days)) for days in (50, 40)])
        for table in ("delivery_attempts", "attempts_per_minute"):
            # What a background TTL merge does, some time after the insert: now, so the test can see it.
            store.client.command(f"OPTIMIZE TABLE {table} FINAL")
        assert store.count_attempts() == 1
        assert rollup_attempts(store) == 1
    finally:
        store.close()


def test_an_insert_repeated_with_its_token_is_stored_once_in_the_table_and_the_rollups(store, attempt):
    batch = [attempt("sub_a"), attempt("sub_b"), attempt("sub_a", seconds_later=90)]

    store.insert_attempts(batch, token="results/0/0-3/1")
    store.insert_attempts(batch, token="results/0/0-3/1")
    assert (store.count_attempts(), rollup_attempts(store)) == (3, 3)

    store.insert_attempts(batch, token="results/0/3-6/1")  # another chunk that happens to hold the same rows
    assert (store.count_attempts(), rollup_attempts(store)) == (6, 6)


def test_attempts_table_columns_are_the_schema_fields(store):
    assert tuple(store.column_types()) == attempt_columns()
    rollup = store.column_types("attempts_per_minute")
    assert rollup["latency_ms_quantiles"] == "AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64)"
    assert rollup["attempts"] == "SimpleAggregateFunction(sum, UInt64)"


@pytest.mark.parametrize("sql, statements", [
    ("-- a comment\nCREATE TABLE a (x UInt8);\n\n  -- another\nALTER TABLE a ADD COLUMN y UInt8;\n", 2),
    ("SELECT 1", 1),
    ("-- only a comment\n", 0),
])
def test_split_statements(sql, statements):
    assert len(split_statements(sql)) == statements
    assert all("--" not in statement and not statement.endswith(";") for statement in split_statements(sql))
