"""An event that matches nothing is decided again once the subscriptions table has caught up;
when Kafka cannot tell how far that is, the event is decided with what the table holds, never refused."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from prometheus_client import CollectorRegistry

from pipeline.errors import ServiceError
from pipeline.kafka.position import Position
from pipeline.metrics.router import RouterMetrics
from pipeline.models import Event
from pipeline.router.app import EventRouter
from pipeline.topics import TopicNames


class UnreachableTable:
    def __init__(self) -> None:
        self.asked: list[float] = []

    def on_change(self, listener) -> None:  # type: ignore[no-untyped-def]
        pass

    def get(self, subscription_id: str) -> None:
        return None

    async def caught_up_to(self, moment: float, timeout_s: float) -> None:
        self.asked.append(moment)
        raise ServiceError("could not read the end offsets of subscriptions: broker transport failure")


class Output:
    def write(self, *args: object) -> None:
        raise AssertionError("deciding writes nothing")


async def test_an_unmatched_event_is_decided_with_what_the_table_holds_when_kafka_cannot_answer(caplog) -> None:
    table = UnreachableTable()
    router = EventRouter(Output(), table, TopicNames(prefix="t."))  # type: ignore[arg-type]
    event = Event(type="order.paid", source="shop", data=json.dumps({"n": 1}).encode())
    position = Position(topic="t.events", partition=0, offset=7, timestamp_ms=1_800_000_000_000)
    with caplog.at_level(logging.WARNING):
        decision = await router._decide(event, position)
    assert (decision.matched, decision.reason) == ([], "no_match")
    assert table.asked == [1_800_000_000.0]
    assert "without the newest subscriptions" in caplog.text


def test_the_table_tells_a_broker_that_cannot_answer_as_a_service_error(tmp_path) -> None:
    """The router waits out ServiceError and TimeoutError only: a client exception passing through
    would refuse a valid event as unroutable."""
    from concurrent.futures import Future

    from confluent_kafka import KafkaError, KafkaException

    from pipeline.config import Settings
    from pipeline.subscriptions.table import SubscriptionTable

    class Admin:
        def list_offsets(self, wanted, request_timeout):  # type: ignore[no-untyped-def]
            failed: Future = Future()
            failed.set_exception(KafkaException(KafkaError(KafkaError._TRANSPORT)))
            return {tp: failed for tp in wanted}

    table = SubscriptionTable(Settings(topic_prefix="t.", data_dir=tmp_path))
    table._admin = Admin()  # type: ignore[assignment]
    with pytest.raises(ServiceError, match="end offsets of t.subscriptions"):
        table._end_offsets([0, 1])


class SlowTable(UnreachableTable):
    async def caught_up_to(self, moment: float, timeout_s: float) -> None:
        self.asked.append(moment)
        await asyncio.sleep(0.05)


async def test_the_wait_for_the_table_is_measured() -> None:
    """The router decides one event at a time, so an operator sees there why events queue behind."""
    registry = CollectorRegistry()
    router = EventRouter(Output(), SlowTable(), TopicNames(prefix="t."), RouterMetrics(registry))  # type: ignore[arg-type]
    event = Event(type="order.paid", source="shop", data=json.dumps({"n": 1}).encode())
    position = Position(topic="t.events", partition=0, offset=7, timestamp_ms=1_800_000_000_000)
    await router._decide(event, position)
    assert registry.get_sample_value("webhook_router_catch_up_seconds_count") == 1
    assert registry.get_sample_value("webhook_router_catch_up_seconds_sum") >= 0.05
