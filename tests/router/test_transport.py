"""The router's faust app fetches each event as soon as it is in the log."""

from __future__ import annotations

import logging
import time

from faust.types import TP

from pipeline.config import Settings
from pipeline.router.app import create_app
from pipeline.router.transport import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES


async def test_the_worker_consumer_fetches_events_as_they_come(tmp_path):
    app = create_app(Settings(topic_prefix="transport-test.", data_dir=tmp_path))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (FETCH_MIN_BYTES, FETCH_MAX_WAIT_MS)
        assert FETCH_MIN_BYTES == 1  # a larger minimum makes a lone event wait out FETCH_MAX_WAIT_MS
    finally:
        await consumer.stop()


async def test_busy_partitions_are_not_reported_as_never_processed(tmp_path, caplog):
    """faust's stream checks read the Monitor the router removes: they would call every busy
    partition unprocessed, at ERROR, every few seconds from five minutes after the start."""
    app = create_app(Settings(topic_prefix="transport-test.", data_dir=tmp_path))
    thread = app.consumer._thread
    fetch_checks = []
    thread._verify_aiokafka_event_path = lambda now, tp: fetch_checks.append(tp) and False
    thread.time_started = time.time() - 3600
    busy = TP("transport-test.events", 0)
    with caplog.at_level(logging.WARNING):
        thread.verify_event_path(time.time(), busy)
    assert fetch_checks == [busy]  # the fetch checks still run
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
