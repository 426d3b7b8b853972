"""The results store: delivery attempts in a ClickHouse table, and the statistics over them.

The same code and SQL serve embedded chdb (a `chdb:///<dir>` DSN) and a ClickHouse server
(an `http(s)://` DSN). chdb lets only one process open a data directory, so in embedded mode
the process that writes attempts is also the one that must answer queries about them.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from pipeline.codec import codec
from pipeline.errors import InvalidInput, ServiceError

SCHEMA_SQL = Path(__file__).with_name("schema.sql")
TABLE = "delivery_attempts"
DATABASE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

# The largest value of each unsigned column; an attempt outside them could never be inserted,
# and a batch that can never be inserted would block the sink forever, so it is refused first.
UNSIGNED_LIMITS = {
    "attempt": 0xFFFF,
    "status_code": 0xFFFF,
    "request_bytes": 0xFFFF_FFFF,
    "response_bytes": 0xFFFF_FFFF,
}

STATS_SQL = """
SELECT
    subscription_id,
    count() AS attempts,
    countIf(outcome = 'success') AS delivered,
    countIf(outcome != 'success') AS failed,
    quantile(0.5)(latency_ms) AS p50_ms,
    quantile(0.99)(latency_ms) AS p99_ms,
    max(started_at) AS last_attempt_at
FROM {table}
{where}
GROUP BY subscription_id
ORDER BY subscription_id
"""


@lru_cache(maxsize=1)
def attempt_columns() -> tuple[str, ...]:
    """Column names in table order: exactly the fields of the DeliveryAttempt schema."""
    return tuple(field["name"] for field in codec("delivery_attempt").schema["fields"])


def check_storable(record: dict[str, Any]) -> dict[str, Any]:
    """Returns the record if the table can hold it; raises InvalidInput naming the bad field."""
    missing = [name for name in attempt_columns() if name not in record]
    if missing:
        raise InvalidInput(missing[0], "missing from the delivery attempt")
    for name, largest in UNSIGNED_LIMITS.items():
        value = record[name]
        if value is not None and not 0 <= value <= largest:
            raise InvalidInput(name, f"{value} is outside 0..{largest}")
    return record


class ResultsStore:
    """Synchronous: every method blocks on ClickHouse, so async code calls it through AsyncResultsStore."""

    def __init__(self, dsn: str, database: str):
        if not re.fullmatch(DATABASE_NAME_PATTERN, database):
            raise InvalidInput("clickhouse_database", f"{database!r} is not a plain identifier")
        self.database = database
        self.table = f"{database}.{TABLE}"
        try:
            # "aware" makes DateTime64('UTC') columns come back as timezone-aware datetimes.
            self._client: Client = clickhouse_connect.get_client(dsn=dsn, tz_mode="aware")
        except Exception as exc:  # chdb and HTTP fail with unrelated types; both mean "cannot open"
            raise ServiceError(_cannot_open(dsn, exc)) from exc

    def create_schema(self) -> None:
        for statement in _without_comments(SCHEMA_SQL.read_text()).split(";"):
            if statement.strip():
                self._client.command(statement.format(database=self.database))

    def insert_attempts(self, records: list[dict[str, Any]]) -> None:
        """One insert call per batch: each call has a fixed cost of a few milliseconds."""
        if not records:
            return
        names = attempt_columns()
        columns = [[record[name] for record in records] for name in names]
        self._client.insert(self.table, columns, column_names=list(names), column_oriented=True)

    def stats(self, subscription_id: str | None = None) -> list[dict[str, Any]]:
        where, parameters = _filters(subscription_id=subscription_id)
        result = self._client.query(STATS_SQL.format(table=self.table, where=where), parameters=parameters)
        return list(result.named_results())

    def count_attempts(self, subscription_id: str | None = None, outcome: str | None = None) -> int:
        where, parameters = _filters(subscription_id=subscription_id, outcome=outcome)
        result = self._client.query(f"SELECT count() FROM {self.table} {where}", parameters=parameters)
        return int(result.result_rows[0][0])

    def column_types(self) -> dict[str, str]:
        """The table's columns as ClickHouse sees them, in order (for checks and tests)."""
        rows = self._client.query(f"DESCRIBE TABLE {self.table}").result_rows
        return {row[0]: row[1] for row in rows}

    def close(self) -> None:
        self._client.close()


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


def _without_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


Result = TypeVar("Result")


class AsyncResultsStore:
    """The store for async code: every call runs on one dedicated thread, off the event loop.

    One thread, because a clickhouse-connect client keeps one server session, which refuses
    concurrent queries, and chdb serializes calls on its handle anyway.
    """

    def __init__(self, store: ResultsStore):
        self.store = store
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results-store")

    async def _call(self, method: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        return await asyncio.get_running_loop().run_in_executor(self._thread, partial(method, *args, **kwargs))

    async def create_schema(self) -> None:
        await self._call(self.store.create_schema)

    async def insert_attempts(self, records: list[dict[str, Any]]) -> None:
        await self._call(self.store.insert_attempts, records)

    async def stats(self, subscription_id: str | None = None) -> list[dict[str, Any]]:
        return await self._call(self.store.stats, subscription_id)

    async def count_attempts(self, subscription_id: str | None = None, outcome: str | None = None) -> int:
        return await self._call(self.store.count_attempts, subscription_id, outcome)

    def close(self) -> None:
        """Waits for the call in progress, then closes the client."""
        self._thread.shutdown(wait=True)
        self.store.close()
