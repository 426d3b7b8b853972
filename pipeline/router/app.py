"""The router's faust app: events in, one delivery task per matching subscription out.

Tasks are keyed by the event's ordering key, so each endpoint topic keeps the publish
order per key. An event that cannot be decoded or validated goes to the dead-letter
topic with the reason in headers: it is never dropped silently and never stops the router.
Agents keep concurrency=1: faust can commit past unprocessed messages otherwise.

faust consumes and commits; what the router writes goes through one confluent-kafka producer
(a KafkaWriter), flushed before every commit: librdkafka batches in C what aiokafka's producer
would spend Python time on for every message.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.sensors import Sensor

from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.errors import InvalidEvent
from pipeline.kafka.writer import KafkaWriter
from pipeline.models import decode_event, encode_task, utcnow
from pipeline.router.decisions import invalid_decision, routing_decision
from pipeline.router.matching import Matcher
from pipeline.router.transport import BatchedFetchTransport
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)
# Without linger each task goes out in a produce request of its own; 10 ms batches them.
ROUTER_LINGER_MS = 10


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def create_app(settings: Settings) -> faust.App:
    names = TopicNames.from_settings(settings)
    datadir = settings.data_dir / "router"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{names.prefix}router",
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_allow_declare=False,  # topics are created explicitly, with their partitions
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10,
        broker_commit_interval=1.0,
        producer_acks=-1,
        stream_wait_empty=False,
    )
    # Before any topic is declared: declaring one makes faust build its default transport.
    app.transport = BatchedFetchTransport(app.conf.broker_consumer, app)
    table = SubscriptionTable(settings)
    output = KafkaWriter(settings, **{"linger.ms": ROUTER_LINGER_MS})
    app.sensors.add(FlushBeforeCommit(output))
    router = EventRouter(output, table, names)

    @app.task
    async def follow_subscriptions() -> None:
        # The worker configures logging before tasks start and leaves the root logger at DEBUG:
        # faust and aiokafka would then build a debug record for every message sent.
        logging.getLogger().setLevel(logging.WARNING)
        # faust's Monitor keeps statistics of every message for its web view, which is off: it
        # would only cost time per event.
        app.sensors.remove(app.monitor)
        await table.run()

    @app.agent(raw_topic(app, names.events), concurrency=1)
    async def route(stream: faust.StreamT) -> None:
        await table.wait_loaded(timeout_s=120)
        async for message in stream.events():
            router.route(message)

    return app


class FlushBeforeCommit(Sensor):
    """faust commits the offsets of the events it has seen through the agent; everything the
    router wrote for them must be in Kafka first. faust calls this before it picks the offsets,
    with no await in between, so every write for an event it commits has been flushed."""

    def __init__(self, output: KafkaWriter):
        super().__init__()
        self.output = output

    def on_commit_initiated(self, consumer: Any) -> None:
        self.output.flush_now()  # raises if a write failed: faust then crashes instead of committing


class EventRouter:
    def __init__(self, output: KafkaWriter, table: SubscriptionTable, names: TopicNames):
        self.output = output
        self.table = table
        self.names = names
        self._matcher_cache = Matcher([])
        self._matcher_version = -1

    def route(self, message: faust.EventT) -> None:
        raw_key, raw_value = message.message.key, message.message.value
        try:
            event = decode_event(raw_value)
        except InvalidEvent as exc:
            self._dead_letter(message, raw_key, raw_value, exc)
            self._record(invalid_decision(message, exc))
            return
        decision = self._matcher().decide(event)
        event_record, routed_at = event.to_record(), utcnow()
        for subscription in decision.matched:
            task = encode_task(subscription.id, routed_at, event_record)
            # Strict order for an endpoint means one partition: key every task the same.
            key = subscription.id.encode() if subscription.ordering == "strict" else event.partition_key
            self.output.write(self.names.endpoint(subscription.id), key, task)
        self._record(routing_decision(event, decision, message))

    def _record(self, decision: dict) -> None:
        self.output.write(self.names.routing, decision["event_id"].encode(),
                          codec("routing_decision").encode(decision))

    def _dead_letter(self, message: faust.EventT, key: bytes | None, value: bytes | None, exc: InvalidEvent) -> None:
        log.warning("dead-lettering an invalid event at %s@%d: %s", message.message.tp, message.message.offset, exc)
        headers = [
            ("error", str(exc).encode()),
            ("error-field", exc.field.encode()),
            ("source-topic", message.message.topic.encode()),
            ("source-partition", str(message.message.partition).encode()),
            ("source-offset", str(message.message.offset).encode()),
        ]
        self.output.write(self.names.dead_letters, key, value or b"", headers)

    def _matcher(self) -> Matcher:
        if self._matcher_version != self.table.version:
            self._matcher_cache = Matcher(self.table.all())
            self._matcher_version = self.table.version
        return self._matcher_cache
