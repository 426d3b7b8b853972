"""The results service's composition root: store, sink and query server in one process.

One process, because embedded chdb lets only one process open its data directory: the process
that writes results must also answer the queries about them.

A ClickHouse server that does not answer at start is waited for, with backoff: the query
server answers meanwhile (its queries fail with the reason), and the results wait in Kafka.
An embedded store that cannot be opened is an error at once: nothing would fix it by waiting.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry

from pipeline import eventloop
from pipeline.config import Settings
from pipeline.kafka.admin import admin_client, core_topics, ensure_topics
from pipeline.metrics.results import ResultsMetrics
from pipeline.results.lag_gauges import measure_sink_lag
from pipeline.results.query_api import bound_port, start_query_server
from pipeline.results.sink import ResultsSink, RetryPolicy, retry_delays
from pipeline.results.store import AsyncResultsStore, ResultsStore, redacted_dsn
from pipeline.tokens import load_tokens
from pipeline.topics import TopicNames

logger = logging.getLogger(__name__)

QUERY_HOST = "127.0.0.1"


def results_store(settings: Settings) -> ResultsStore:
    return ResultsStore(settings.resolved_clickhouse_dsn, settings.clickhouse_database,
                        settings.results_retention_days)


async def run(settings: Settings, stop: asyncio.Event | None = None, *, retry: RetryPolicy = RetryPolicy()) -> None:
    """Runs until stop is set, or until the sink fails (then raises, for a supervisor to restart)."""
    stop = stop or asyncio.Event()
    await asyncio.to_thread(_ensure_topics, settings)
    store = AsyncResultsStore(results_store(settings))
    try:
        if store.store.embedded:
            await store.connect()  # fails now if another process has the directory
        tokens = await asyncio.to_thread(load_tokens, settings)
        registry = CollectorRegistry()
        metrics = ResultsMetrics(registry)
        runner = await start_query_server(store, QUERY_HOST, settings.results_port, tokens=tokens,
                                          registry=registry)
        lag_task = asyncio.create_task(measure_sink_lag(settings, metrics, stop), name="results-lag")
        logger.info(
            "results service: store %s, database %s, queries at http://%s:%d",
            redacted_dsn(settings.resolved_clickhouse_dsn), settings.clickhouse_database, QUERY_HOST,
            bound_port(runner),
        )
        try:
            if await _schema_ready(store, stop, retry):
                await _sink_until_stopped(ResultsSink(settings, store, retry=retry, metrics=metrics), stop)
        finally:
            lag_task.cancel()
            await asyncio.gather(lag_task, return_exceptions=True)
            await runner.cleanup()
    finally:
        store.close()
    logger.info("results service stopped")


async def _schema_ready(store: AsyncResultsStore, stop: asyncio.Event, retry: RetryPolicy) -> bool:
    """Creates or migrates the schema, waiting for a ClickHouse server; False if stopped first."""
    for delay_s in retry_delays(retry):
        try:
            applied = await store.create_schema()
            if applied:
                logger.info("schema migrations applied: %s", ", ".join(applied))
            return True
        except Exception as exc:  # each ClickHouse transport raises its own types
            if store.store.embedded:
                raise  # an embedded store that fails now fails the same way after any wait
            logger.warning("ClickHouse is not ready, retrying in %.1f s: %s", delay_s, exc)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay_s)
            return False
        except TimeoutError:
            pass
    raise AssertionError("retry_delays never ends")


async def _sink_until_stopped(sink: ResultsSink, stop: asyncio.Event) -> None:
    sink_task = asyncio.create_task(sink.run(), name="results-sink")
    stop_task = asyncio.create_task(stop.wait(), name="results-stop")
    try:
        await asyncio.wait({sink_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        sink.stop()
        await sink_task  # re-raises what ended the sink, if it failed on its own


def _ensure_topics(settings: Settings) -> None:
    """Made here too, so the sink never waits on a topic nobody created yet."""
    names = TopicNames.from_settings(settings)
    specs = [spec for spec in core_topics(settings) if spec.name in (names.results, names.routing)]
    ensure_topics(admin_client(settings.kafka_bootstrap_servers), specs)


async def _run_until_signalled(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run(settings, stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # a line per group step is noise at every start
    eventloop.run(_run_until_signalled(Settings()))
