"""Every query of the Grafana dashboard runs on our tables, its macros expanded as the plugin does."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from pipeline.config import PROJECT_ROOT
from tests.results.mix import expected_summary, is_attempt

pytestmark = pytest.mark.integration

DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "dashboards" / "webhook-deliveries.json"
CONDITIONAL_ALL = re.compile(r"\$__conditionalAll\((.*?), \$(\w+)\)")


def expand(sql: str, start: str, end: str, chosen: dict[str, str]) -> str:
    """The plugin's macros: a time filter, the panel interval, and `All` or a chosen value per variable."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime('{start}') AND \1 <= toDateTime('{end}')", sql)
    sql = sql.replace("$__interval_s", "60")

    def condition(match: re.Match) -> str:
        name = match.group(2)
        if name not in chosen:
            return "1=1"
        return match.group(1).replace(f"${{{name}:singlequote}}", f"'{chosen[name]}'")

    return CONDITIONAL_ALL.sub(condition, sql)


def panels() -> dict[str, str]:
    board = json.loads(DASHBOARD.read_text())
    return {panel["title"]: panel["targets"][0]["rawSql"] for panel in board["panels"]}


@pytest.mark.parametrize("chosen", [{}, {"subscription": "sub_5xx"}, {"tenant": "acme"}])
def test_every_panel_query_runs_and_counts_like_the_api(ingested, base_time, chosen):
    records, _, store = ingested
    start, end = (base_time - timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S"), \
        (base_time + timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S")
    column = {"subscription": "subscription_id", "tenant": "tenant"}
    wanted = [r for r in records if all(r[column[name]] == value for name, value in chosen.items())]

    results = {title: store.client.query(expand(sql, start, end, chosen)).result_rows
               for title, sql in panels().items()}

    requests = [r for r in wanted if is_attempt(r)]
    assert results["Attempts"] == [(len(requests),)]
    assert results["Failed"] == [(sum(r["outcome"] not in ("success", "unknown") for r in requests),)]
    assert results["Dead-lettered"] == [(len(wanted) - len(requests),)]
    per_subscription = {}
    for _, subscription, attempts in results["Attempts per subscription"]:
        per_subscription[subscription] = per_subscription.get(subscription, 0) + attempts
    expected = expected_summary(wanted, lambda r: r["subscription_id"])
    assert per_subscription == {name: row["attempts"] for name, row in expected.items()}
    assert {row[0]: row[3] for row in results["Per subscription"]} == {n: r["failed"] for n, r in expected.items()}
    assert {row[0]: row[4] for row in results["Per subscription"]} == \
        {n: r["dead_lettered"] for n, r in expected.items()}
    assert {row[0]: row[5] for row in results["Per subscription"]} == {n: r["unknown"] for n, r in expected.items()}
    assert len(results["Last requests"]) == min(10, len(requests))
    assert "dead_lettered" not in {row[5] for row in results["Last requests"]}


def test_the_variables_list_the_values_there_are(ingested):
    _, _, store = ingested
    board = json.loads(DASHBOARD.read_text())

    values = {var["name"]: [row[0] for row in store.client.query(var["query"]).result_rows]
              for var in board["templating"]["list"]}

    assert values == {"subscription": ["sub_4xx", "sub_5xx", "sub_ok", "sub_slow"], "tenant": ["acme", "globex"]}
