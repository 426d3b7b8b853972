"""The results service's composition root: store, sink and query server in one process.

One process, because embedded chdb lets only one process open its data directory: the process
that writes attempts must also answer the queries about them.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from pipeline import eventloop
from pipeline.config import Settings
from pipeline.kafka.admin import admin_client, core_topics, ensure_topics
from pipeline.results.query_api import bound_port, start_query_server
from pipeline.results.sink import ResultsSink
from pipeline.results.store import AsyncResultsStore, ResultsStore, redacted_dsn
from pipeline.topics import TopicNames

logger = logging.getLogger(__name__)

QUERY_HOST = "127.0.0.1"


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Runs until stop is set, or until the sink fails (then raises, for a supervisor to restart)."""
    stop = stop or asyncio.Event()
    await asyncio.to_thread(_ensure_results_topic, settings)
    store = AsyncResultsStore(ResultsStore(settings.resolved_clickhouse_dsn, settings.clickhouse_database))
    try:
        await store.create_schema()
        runner = await start_query_server(store, QUERY_HOST, settings.results_port)
        logger.info(
            "results service: store %s, database %s, queries at http://%s:%d",
            redacted_dsn(settings.resolved_clickhouse_dsn),
            settings.clickhouse_database,
            QUERY_HOST,
            bound_port(runner),
        )
        try:
            await _sink_until_stopped(ResultsSink(settings, store), stop)
        finally:
            await runner.cleanup()
    finally:
        store.close()
    logger.info("results service stopped")


async def _sink_until_stopped(sink: ResultsSink, stop: asyncio.Event) -> None:
    sink_task = asyncio.create_task(sink.run(), name="results-sink")
    stop_task = asyncio.create_task(stop.wait(), name="results-stop")
    try:
        await asyncio.wait({sink_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        sink.stop()
        await sink_task  # re-raises what ended the sink, if it failed on its own


def _ensure_results_topic(settings: Settings) -> None:
    """Made here too, so the sink never waits on a topic nobody created yet."""
    results = TopicNames.from_settings(settings).results
    specs = [spec for spec in core_topics(settings) if spec.name == results]
    ensure_topics(admin_client(settings.kafka_bootstrap_servers), specs)


async def _run_until_signalled(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run(settings, stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    eventloop.run(_run_until_signalled(Settings()))
