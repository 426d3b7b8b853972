"""The Prometheus side of deploy/grafana: every panel and alert rule is valid PromQL and asks only
for metrics some stage exports, with labels it exports them with; the scrape config finds every stage."""

from __future__ import annotations

import json
import re

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import PROJECT_ROOT, Settings
from pipeline.metrics.api import ApiMetrics
from pipeline.metrics.dispatcher import DispatcherMetrics
from pipeline.metrics.results import ResultsMetrics
from pipeline.metrics.router import RouterMetrics

GRAFANA = PROJECT_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "webhook-pipeline-metrics.json"
ALERTS = GRAFANA / "prometheus" / "alerts.yml"
SCRAPE = GRAFANA / "prometheus" / "prometheus.yml"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
METRIC = re.compile(r"\bwebhook_\w+")
GROUPING = re.compile(r"\b(?:by|without) \(([^)]*)\)")
# What Prometheus adds to every scraped series, and `le` of histogram buckets.
PROMETHEUS_LABELS = {"job", "instance", "le"}


def exported() -> dict[str, set[str]]:
    """Every sample name the stages export, with its label names, after each metric was used once."""
    registries = [CollectorRegistry() for _ in range(4)]  # one per stage, as each process has
    router = RouterMetrics(registries[0])
    router.routed(1)
    router.refused()
    dispatcher = DispatcherMetrics(registries[1])
    dispatcher.attempted("success", 200, 1, 12.0)
    dispatcher.retries_deferred.inc()
    dispatcher.backlog.labels("sub").set(1)
    dispatcher.oldest_age.labels("sub").set(1)
    dispatcher.partitions.labels("owned").set(1)
    results = ResultsMetrics(registries[2])
    results.rows.labels("delivery_attempts").inc()
    results.lag.labels("t").set(0)
    results.lag_age.labels("t").set(0)
    api = ApiMetrics(registries[3])
    api.requests.labels("GET", "/", "2xx").inc()
    api.latency.labels("/").observe(0.1)
    api.published.inc()
    names: dict[str, set[str]] = {}
    for registry in registries:
        for family in text_string_to_metric_families(generate_latest(registry).decode()):
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
    return names


def expressions() -> dict[str, str]:
    board = json.loads(DASHBOARD.read_text())
    found = {f"panel {panel['title']!r} {target['refId']}": target["expr"]
             for panel in board["panels"] for target in panel["targets"]}
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        found |= {f"alert {rule['alert']}": rule["expr"] for rule in group["rules"]}
    return found


@pytest.mark.parametrize("where", sorted(expressions()))
def test_every_query_parses_and_asks_for_exported_metrics_and_labels(where: str) -> None:
    expr = expressions()[where]
    known = exported()

    promql_parser.parse(expr.replace("$__rate_interval", "1m"))  # raises on a syntax error
    metrics = set(METRIC.findall(expr))
    assert metrics or "up{" in expr, where
    assert metrics <= set(known), f"{where}: {metrics - set(known)} no stage exports"
    labels = set().union(*(known[name] for name in metrics)) | PROMETHEUS_LABELS
    for grouping in GROUPING.findall(expr):
        assert {label.strip() for label in grouping.split(",")} <= labels, where


def test_the_dashboard_shows_each_stage_and_the_backlog() -> None:
    board = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in board["panels"]}
    uid = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]["uid"]

    assert {"Stages up", "Deliveries per second", "Delivery latency", "Events routed and dropped",
            "Endpoint backlog (top 10)", "Oldest pending task (top 10)", "Backlog per subscription",
            "Retries waiting", "Dead letters", "Results sink lag", "Admin API requests"} <= titles
    assert {panel["datasource"]["uid"] for panel in board["panels"]} == {uid}
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])


def test_the_example_alerts_cover_backlog_stages_and_dead_letters() -> None:
    rules = {rule["alert"]: rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}

    assert {"EndpointBacklogGrowing", "StageDown", "DeadLettersRising"} <= set(rules)
    assert all(rule["labels"]["severity"] and rule["annotations"]["summary"] for rule in rules.values())


def test_the_scrape_config_finds_every_stage_on_its_default_port() -> None:
    defaults = Settings()
    config = yaml.safe_load(SCRAPE.read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}

    assert targets == {"webhook-router": [f"127.0.0.1:{defaults.router_metrics_port}"],
                       "webhook-dispatcher": [f"127.0.0.1:{defaults.dispatcher_metrics_port}"],
                       "webhook-results": [f"127.0.0.1:{defaults.results_port}"],
                       "webhook-api": [f"127.0.0.1:{defaults.api_port}"]}
    assert config["rule_files"] == [ALERTS.name]
