"""The benchmark's count of broker requests, read from the real broker's metrics."""

from __future__ import annotations

import shutil

import pytest

from bench.broker_requests import BrokerRequests, parse_counts, per_delivery
from pipeline.config import Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.kafka.clients import AcknowledgedSender
from pipeline.kafka.admin import ensure_core_topics
from pipeline.topics import TopicNames

JMX_LINES = """\
kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Fetch,version=11:Count=6434
kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Fetch,version=16:Count=4698
kafka.network:type=RequestMetrics,name=RequestsPerSec,request=FetchConsumer,version=16:Count=4698
kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=10:Count=98402
"""


def test_counts_are_summed_over_versions() -> None:
    assert parse_counts(JMX_LINES) == {"Fetch": 11132, "FetchConsumer": 4698, "Produce": 98402}


def test_per_delivery_leaves_out_subkinds_and_kinds_that_did_not_grow() -> None:
    before = {"Produce": 100, "Fetch": 50, "FetchConsumer": 50, "Heartbeat": 7}
    after = {"Produce": 400, "Fetch": 150, "FetchConsumer": 150, "Heartbeat": 7}
    assert per_delivery(before, after, 100) == {"Produce": 3.0, "Fetch": 1.0}


def test_the_broker_counts_each_acknowledged_write(settings: Settings) -> None:
    broker = KafkaBroker(Settings())
    if broker.pid is None or broker.bootstrap != settings.kafka_bootstrap_servers or shutil.which("jcmd") is None:
        pytest.skip("needs the local broker started from this checkout, and jcmd")
    ensure_core_topics(settings)
    requests = BrokerRequests(broker)
    before = requests.counts()
    assert before, requests.unavailable
    sender = AcknowledgedSender(settings)
    try:
        for n in range(5):  # one at a time, each acknowledged: a request each
            sender.send(TopicNames.from_settings(settings).events, b"k", str(n).encode())
    finally:
        sender.close()
    grown = per_delivery(before, requests.counts(), 1)
    assert grown.get("Produce", 0) >= 5, grown
