"""The `pipeline` command starts without importing the pipeline's heavy parts it does not need."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("faust", "aiokafka", "confluent_kafka", "fastapi", "chdb", "clickhouse_connect", "httpx", "aiohttp",
         "uvicorn", "pipeline.config")
IMPORTED_BY = """
import json, sys
from pipeline.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {heavy} or name in {heavy})))
"""


def imported_by(*args: str) -> set[str]:
    """The heavy modules a fresh interpreter has imported after running `pipeline ARGS`."""
    script = IMPORTED_BY.format(heavy=repr(set(HEAVY)))
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("args", [
    ["--help"], ["subscriptions", "--help"], ["subscriptions", "create", "--help"], ["stats", "--help"],
    ["stats", "last", "--help"], ["publish", "--help"], ["replay", "--help"], ["receiver", "--help"],
    ["run", "--help"], ["kafka", "--help"], ["router", "--help"], ["restart", "--help"],
])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    assert imported_by(*args) == set()


def test_the_probe_sees_heavy_imports() -> None:
    """The check above cannot pass by missing imports: a command that asks Kafka shows its client."""
    assert {"pipeline.config", "confluent_kafka"} <= imported_by("kafka", "status")
