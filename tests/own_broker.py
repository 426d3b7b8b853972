"""A Kafka broker of a test's own, on free ports with its data under the test's directory, for
tests that stop and start a broker (never the suite's shared one). Its jars are the project's,
fetched once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from tests.conftest import free_port


@contextmanager
def own_broker(directory: Path) -> Iterator[KafkaBroker]:
    jars = KafkaBroker(Settings()).fetch_jars()
    broker = KafkaBroker(Settings(data_dir=directory, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
                                  kafka_controller_port=free_port(), kafka_heap="512m"))
    broker.paths.root.mkdir(parents=True, exist_ok=True)
    broker.paths.jars.symlink_to(jars)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
