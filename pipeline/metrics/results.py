"""The results service's metrics: rows stored, and how far its sink is behind the results topics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ResultsMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.rows = Counter("webhook_results_rows_stored", "Rows inserted into ClickHouse, by table",
                            ["table"], registry=registry)
        self.lag = Gauge("webhook_results_sink_lag_messages", "Records in a results topic the sink has not "
                         "stored yet", ["topic"], registry=registry)
        self.lag_age = Gauge("webhook_results_sink_lag_seconds", "Age of the oldest record in a results topic "
                             "the sink has not stored yet (0 when none)", ["topic"], registry=registry)
