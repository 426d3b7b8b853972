"""The router's faust app fetches each event as soon as it is in the log."""

from __future__ import annotations

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
