"""Every few seconds, how far the results sink is behind the results and routing topics, into its metrics."""

from __future__ import annotations

import asyncio
import logging
import time

from confluent_kafka import KafkaException

from pipeline.config import Settings
from pipeline.errors import ServiceError
from pipeline.kafka.admin import admin_client
from pipeline.kafka.lag import GroupLag
from pipeline.metrics.results import ResultsMetrics
from pipeline.results.sink import results_group_id
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)


async def measure_sink_lag(settings: Settings, metrics: ResultsMetrics, stop: asyncio.Event) -> None:
    names = TopicNames.from_settings(settings)
    topics = [names.results, names.routing]
    lag = GroupLag(admin_client(settings.kafka_bootstrap_servers), settings.kafka_bootstrap_servers,
                   results_group_id(settings))
    while not stop.is_set():
        try:
            found = await asyncio.to_thread(lag.read, topics)
            now = time.time()
            for topic in topics:
                behind = found.get(topic)
                metrics.lag.labels(topic).set(behind.pending if behind else 0)
                metrics.lag_age.labels(topic).set((behind.oldest_age_s(now) if behind else None) or 0.0)
        except (ServiceError, KafkaException) as exc:
            log.warning("measuring the results sink's lag: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), settings.backlog_metrics_interval_s)
        except TimeoutError:
            pass
