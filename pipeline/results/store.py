"""The results store: delivery attempts and routing decisions in ClickHouse, and queries over them.

The same code and SQL serve embedded chdb (a `chdb:///<dir>` DSN) and a ClickHouse server
(an `http(s)://` DSN). chdb lets only one process open a data directory, so in embedded mode
the process that writes results is also the one that must answer queries about them.
The schema lives in deploy/clickhouse/schema (see migrations) and the statistics queries in
deploy/clickhouse/queries, so what the API runs is what a person can paste.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from pipeline.config import PROJECT_ROOT
from pipeline.errors import InvalidInput, ServiceError
from pipeline.results.migrations import migrate
from pipeline.codec import codec
from pipeline.results.streams import ATTEMPTS, ROUTING

QUERY_DIR = PROJECT_ROOT / "deploy" / "clickhouse" / "queries"
TABLE = ATTEMPTS.table
DATABASE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
DEFAULT_RETENTION_DAYS = 90
# The /v1/stats row, as it was before the rollups existed: clients read these names.
STATS_COLUMNS = ("subscription_id", "attempts", "delivered", "failed", "unknown", "dead_lettered", "p50_ms",
                 "p99_ms", "last_attempt_at")

# A replayed chunk carries the token of its first insert: ClickHouse then skips it in the table
# and, with the second setting, in every materialized view fed by it (so rollups stay exact).
DEDUPLICATION = {"deduplicate_blocks_in_dependent_materialized_views": 1}


@lru_cache(maxsize=None)
def field_defaults(table: str) -> dict[str, Any]:
    codec_name = {ATTEMPTS.table: ATTEMPTS.codec_name, ROUTING.table: ROUTING.codec_name}[table]
    return {field["name"]: field["default"] for field in codec(codec_name).schema["fields"] if "default" in field}


def attempt_columns() -> tuple[str, ...]:
    """Column names of delivery_attempts in table order: the fields of the DeliveryAttempt schema
    but those only Kafka needs."""
    return ATTEMPTS.columns


def check_storable(record: dict[str, Any]) -> dict[str, Any]:
    """Returns the attempt if the table can hold it; raises InvalidInput naming the bad field."""
    return ATTEMPTS.check_storable(record)


@lru_cache(maxsize=None)
def query_sql(name: str) -> str:
    return (QUERY_DIR / f"{name}.sql").read_text().strip().rstrip(";")


class ResultsStore:
    """Synchronous: every method blocks on ClickHouse, so async code calls it through AsyncResultsStore.

    The connection is made on first use and again after a failed attempt, so a store whose
    ClickHouse server is down can be created, and works once the server answers.
    """

    def __init__(self, dsn: str, database: str, retention_days: int = DEFAULT_RETENTION_DAYS):
        if not re.fullmatch(DATABASE_NAME_PATTERN, database):
            raise InvalidInput("clickhouse_database", f"{database!r} is not a plain identifier")
        self.dsn = dsn
        self.database = database
        self.retention_days = retention_days
        self._client: Client | None = None

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    @property
    def client(self) -> Client:
        if self._client is None:
            try:
                # "aware" makes DateTime64('UTC') columns come back as timezone-aware datetimes.
                client = clickhouse_connect.get_client(dsn=self.dsn, tz_mode="aware")
            except Exception as exc:  # chdb and HTTP fail with unrelated types; both mean "cannot open"
                raise ServiceError(_cannot_open(self.dsn, exc)) from exc
            client.database = self.database  # the SQL files name tables without a database
            self._client = client
        return self._client

    def connect(self) -> None:
        """Opens the store now rather than on first use (embedded: fails at once if another process has it)."""
        _ = self.client

    def create_schema(self) -> list[str]:
        """Creates the database, applies pending migrations and the retention; returns the migrations applied."""
        with self._without_default_database() as client:
            client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        return migrate(self.client, self.retention_days)

    def insert_rows(self, table: str, columns: tuple[str, ...], records: list[dict[str, Any]],
                    token: str | None = None) -> None:
        """One insert call per chunk (each call costs a few milliseconds); token makes a replay a no-op."""
        if not records:
            return
        defaults = field_defaults(table)
        # Fields added to a schema later have defaults, as Avro gives records decoded from Kafka.
        data = [[record[name] if name in record else defaults[name] for record in records] for name in columns]
        settings = DEDUPLICATION | {"insert_deduplication_token": token} if token else None
        self.client.insert(table, data, column_names=list(columns), column_oriented=True, settings=settings)

    def insert_attempts(self, records: list[dict[str, Any]], token: str | None = None) -> None:
        self.insert_rows(TABLE, attempt_columns(), records, token)

    def query(self, name: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows of deploy/clickhouse/queries/<name>.sql with its parameters bound server-side."""
        return list(self.client.query(query_sql(name), parameters=parameters).named_results())

    def stats(self, subscription_id: str | None = None, tenant: str | None = None) -> list[dict[str, Any]]:
        """All-time totals per subscription (the /v1/stats rows)."""
        rows = self.query("subscriptions", {"subscription_id": subscription_id or "", "tenant": tenant or ""})
        return [{name: row[name] for name in STATS_COLUMNS} for row in rows]

    def count_attempts(self, subscription_id: str | None = None, outcome: str | None = None, *,
                       tenant: str | None = None) -> int:
        """Stored HTTP attempts; dead_lettered rows (no HTTP attempt) only when that outcome is asked for."""
        where, parameters = _filters(subscription_id=subscription_id, outcome=outcome, tenant=tenant)
        if outcome is None:
            where = f"{where or 'WHERE 1'} AND outcome != 'dead_lettered'"
        result = self.client.query(f"SELECT count() FROM {TABLE} {where}", parameters=parameters)
        return int(result.result_rows[0][0])

    def column_types(self, table: str = TABLE) -> dict[str, str]:
        """A table's columns as ClickHouse sees them, in order (for checks and tests)."""
        rows = self.client.query(f"DESCRIBE TABLE {table}").result_rows
        return {row[0]: row[1] for row in rows}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @contextmanager
    def _without_default_database(self) -> Iterator[Client]:
        """The client with no default database, for statements that must run before it exists."""
        client = self.client
        client.database = None
        try:
            yield client
        finally:
            client.database = self.database


def redacted_dsn(dsn: str) -> str:
    """The DSN fit for logs and errors: an http(s) DSN may carry a password."""
    parts = urlsplit(dsn)
    if parts.username is None:
        return dsn
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _cannot_open(dsn: str, exc: Exception) -> str:
    if dsn.startswith("chdb:"):
        return (
            f"cannot open embedded ClickHouse at {dsn}: only one process may open its directory "
            f"(is a results service already running?): {exc}"
        )
    return f"cannot reach ClickHouse at {redacted_dsn(dsn)}: {exc}"


def _filters(**equal_to: str | None) -> tuple[str, dict[str, str]]:
    """A WHERE clause of server-side bound parameters, for the filters that are set."""
    parameters = {column: value for column, value in equal_to.items() if value is not None}
    if not parameters:
        return "", {}
    conditions = [f"{column} = {{{column}:String}}" for column in parameters]
    return "WHERE " + " AND ".join(conditions), parameters


Result = TypeVar("Result")


class AsyncResultsStore:
    """The store for async code: every call runs on one dedicated thread, off the event loop.

    One thread, because a clickhouse-connect client keeps one server session, which refuses
    concurrent queries, and chdb serializes calls on its handle anyway.
    """

    def __init__(self, store: ResultsStore):
        self.store = store
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results-store")

    async def call(self, method: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        return await asyncio.get_running_loop().run_in_executor(self._thread, partial(method, *args, **kwargs))

    async def connect(self) -> None:
        await self.call(self.store.connect)

    async def create_schema(self) -> list[str]:
        return await self.call(self.store.create_schema)

    async def insert_rows(self, table: str, columns: tuple[str, ...], records: list[dict[str, Any]],
                          token: str | None = None) -> None:
        await self.call(self.store.insert_rows, table, columns, records, token)

    async def insert_attempts(self, records: list[dict[str, Any]], token: str | None = None) -> None:
        await self.call(self.store.insert_attempts, records, token)

    async def query(self, name: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.call(self.store.query, name, parameters)

    async def stats(self, subscription_id: str | None = None, tenant: str | None = None) -> list[dict[str, Any]]:
        return await self.call(self.store.stats, subscription_id, tenant)

    async def count_attempts(self, subscription_id: str | None = None, outcome: str | None = None, *,
                             tenant: str | None = None) -> int:
        return await self.call(self.store.count_attempts, subscription_id, outcome, tenant=tenant)

    def release(self) -> None:
        """Waits for the call in progress and ends the thread, leaving the store open for its owner."""
        self._thread.shutdown(wait=True)

    def close(self) -> None:
        """Waits for the call in progress, then closes the client."""
        self.release()
        self.store.close()
