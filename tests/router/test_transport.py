"""The router's faust app fetches events in rounds that wait a moment for more than one."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.router.app import create_app
from pipeline.router.transport import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES


async def test_the_worker_consumer_waits_for_fuller_fetches(tmp_path):
    app = create_app(Settings(topic_prefix="transport-test.", data_dir=tmp_path))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (FETCH_MIN_BYTES, FETCH_MAX_WAIT_MS)
        assert FETCH_MIN_BYTES > 1  # aiokafka's default answers every fetch with whatever there is
    finally:
        await consumer.stop()
