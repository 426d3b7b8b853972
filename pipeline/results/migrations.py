"""The statistics schema: the DDL files of deploy/clickhouse/schema, applied in order at start.

Each file is applied once and recorded in `schema_migrations`; each is also written to be
harmless when run again (IF NOT EXISTS, guarded backfills), because a crash can come between
a file's statements and its record. The files name tables without a database, so a person
can paste them after `USE <database>`; here the client's default database supplies it.

The retention is a setting, not a migration: at every start each table's TTL is compared
with `results_retention_days` and rewritten only when it differs (a rewrite touches every part).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

from pipeline.config import PROJECT_ROOT

logger = logging.getLogger(__name__)

SCHEMA_DIR = PROJECT_ROOT / "deploy" / "clickhouse" / "schema"
LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY version
"""

# The time each table's TTL counts from; the interval is the retention setting.
TTL_TIME = {
    "delivery_attempts": "toDateTime(started_at)",
    "routing_decisions": "toDateTime(decided_at)",
    "attempts_per_minute": "minute",
    "routing_per_minute": "minute",
}
TTL_DAYS = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)")


@dataclass(frozen=True)
class Migration:
    version: str
    statements: tuple[str, ...]


def load_migrations(directory: Path = SCHEMA_DIR) -> list[Migration]:
    return [Migration(path.stem, split_statements(path.read_text())) for path in sorted(directory.glob("*.sql"))]


def split_statements(sql: str) -> tuple[str, ...]:
    """Statements of a file, without comment lines (the files hold no ';' inside strings)."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return tuple(statement.strip() for statement in code.split(";") if statement.strip())


def migrate(client: Client, retention_days: int) -> list[str]:
    """Applies the migrations not yet recorded and sets the retention; returns the versions applied."""
    client.command(LEDGER_DDL)
    applied = {row[0] for row in client.query("SELECT version FROM schema_migrations").result_rows}
    newly_applied = []
    for migration in load_migrations():
        if migration.version in applied:
            continue
        for statement in migration.statements:
            client.command(statement)
        client.insert("schema_migrations", [[migration.version]], column_names=["version"])
        newly_applied.append(migration.version)
        logger.info("applied schema migration %s", migration.version)
    set_retention(client, retention_days)
    return newly_applied


def set_retention(client: Client, days: int) -> None:
    if days < 1:
        raise ValueError(f"the retention must be at least one day, not {days}")
    for table, current in table_retention_days(client).items():
        if current != days:
            client.command(f"ALTER TABLE {table} MODIFY TTL {TTL_TIME[table]} + INTERVAL {days} DAY")
            logger.info("retention of %s set to %d days (was %s)", table, days, current)


def table_retention_days(client: Client) -> dict[str, int | None]:
    """Each TTL'd table's retention in days, None where it has no TTL (yet)."""
    rows = client.query(
        "SELECT name, engine_full FROM system.tables"
        " WHERE database = currentDatabase() AND name IN {names:Array(String)}",
        parameters={"names": list(TTL_TIME)},
    ).result_rows
    days = {}
    for name, engine in rows:
        match = TTL_DAYS.search(engine)
        days[name] = int(match.group(1)) if match else None
    return days
