"""The router's faust app: events in, one delivery task per matching subscription out.

Tasks are keyed by the event's ordering key, so each endpoint topic keeps the publish
order per key. An event the router cannot route (it does not decode or validate, was published
under another key than its ordering key, or would make a task too large to write) goes to the
dead-letter topic with the reason in headers, and gets a routing row: it is never dropped
silently and never stops the router. Whatever an event makes fail is such a refusal; only a
write Kafka did not take stops the router, and then nothing more is committed (faust acks an
event even when the agent raises, so the outcome must be written before the agent returns).
Agents keep concurrency=1: faust can commit past unprocessed messages otherwise.

faust consumes and commits; what the router writes goes through one confluent-kafka producer
(a KafkaWriter), flushed before every commit: librdkafka batches in C what aiokafka's producer
would spend Python time on for every message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.sensors import Sensor
from prometheus_client import CollectorRegistry

from pipeline import eventloop
from pipeline.codec import codec
from pipeline.config import Settings
from pipeline.errors import InvalidEvent, ServiceError
from pipeline.kafka.admin import admin_client
from pipeline.kafka.dead_letters import dead_letter
from pipeline.kafka.lost import LossReporter, group_losses
from pipeline.kafka.position import Position
from pipeline.kafka.wakeups import Doorbells
from pipeline.kafka.writer import KafkaWriter, record_size
from pipeline.metrics.lost import count_lost_records
from pipeline.metrics.router import RouterMetrics
from pipeline.metrics.server import serve_metrics
from pipeline.models import Event, encode_tasks, utcnow
from pipeline.router.admission import admit
from pipeline.router.decisions import invalid_decision, routing_decision
from pipeline.router.matching import Decision, Matcher
from pipeline.router.transport import BatchedFetchTransport
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)
# Without linger each task goes out in a produce request of its own; 10 ms batches them.
ROUTER_LINGER_MS = 1
# Room a task keeps under the record limit for the headers it may gather later (a delay topic's,
# a replay's, a dead letter's), so the dispatcher can always park or dead-letter it whole.
TASK_HEADROOM_BYTES = 4096
# How long an event matching nothing waits for the subscriptions table to show the newest changes.
CATCH_UP_TIMEOUT_S = 5.0


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
    registry = CollectorRegistry()
    router = EventRouter(output, table, names, RouterMetrics(registry))
    count_lost_records(registry)

    @app.task
    async def report_lost_events() -> None:
        # Events Kafka deleted before the router read them (the events topic's retention passed
        # while no router ran): faust would start past them without a word.
        admin = admin_client(settings.kafka_bootstrap_servers)
        lost = await asyncio.to_thread(group_losses, admin, settings.kafka_bootstrap_servers, app.conf.id,
                                       [names.events])
        await asyncio.to_thread(LossReporter(settings, "router").report, lost)

    @app.task
    async def follow_subscriptions() -> None:
        # The worker configures logging before tasks start and leaves the root logger at DEBUG:
        # faust and aiokafka would then build a debug record for every message sent.
        logging.getLogger().setLevel(logging.WARNING)
        # faust's Monitor keeps statistics of every message for its web view, which is off: it
        # would only cost time per event.
        app.sensors.remove(app.monitor)
        serve_metrics(registry, settings.router_metrics_port, "router")
        await table.run()

    @app.agent(raw_topic(app, names.events), concurrency=1)
    async def route(stream: faust.StreamT) -> None:
        await table.wait_loaded(timeout_s=120)
        eventloop.settled()
        async for message in stream.events():
            await router.route(message)

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
    def __init__(self, output: KafkaWriter, table: SubscriptionTable, names: TopicNames,
                 metrics: RouterMetrics | None = None):
        self.output = output
        self.metrics = metrics or RouterMetrics(CollectorRegistry())
        self.table = table
        self.names = names
        self._doorbells = Doorbells(output.write, names)
        self._matcher_cache = Matcher()
        self._changed: set[str] = set()  # subscriptions changed since the matcher last looked
        table.on_change(self._changed.update)

    async def route(self, message: faust.EventT) -> None:
        """Writes the event's outcome: its tasks and routing row, or its dead letter and routing row.
        Raises only when a write failed, and then the writer refuses every later commit."""
        record = message.message
        position = Position.of(record)
        try:
            event = admit(record.key, record.value, position)
            decision = await self._decide(event, position)
            tasks = self._tasks(event, decision)
            row = self._row(routing_decision(event, decision, position))
        except InvalidEvent as exc:
            self._refuse(record, position, exc)
            return
        except Exception as exc:  # noqa: BLE001 -- whatever an event makes fail, it is refused, never lost
            log.exception("the event at %s could not be routed", position)
            self._refuse(record, position, InvalidEvent("value", f"cannot be routed: {type(exc).__name__}: {exc}"))
            return
        for topic, key, task in tasks:
            self.output.write(topic, key, task)
        for subscription in decision.matched:
            self._doorbells.ring(subscription.id)
        self.output.write(self.names.routing, *row)
        if tasks:
            self.metrics.routed(len(tasks))
        else:
            self.metrics.dropped(decision.reason or "no_match")

    async def _decide(self, event: Event, position: Position) -> Decision:
        """An event that matches nothing may have been published right after the subscription meant
        for it, whose record the table has not read yet: it is decided again once the table has
        read every change written before the event, so a subscription created before an event is
        published gets it."""
        decision = self._matcher().decide(event)
        if decision.reason != "no_match" or position.timestamp_ms is None:
            return decision
        try:
            with self.metrics.catch_up.time():
                await self.table.caught_up_to(position.timestamp_ms / 1000, timeout_s=CATCH_UP_TIMEOUT_S)
        except (TimeoutError, ServiceError) as exc:
            log.warning("deciding the event at %s without the newest subscriptions: %s", position, exc)
            return decision
        return self._matcher().decide(event)

    def _tasks(self, event: Event, decision: Decision) -> list[tuple[str, bytes, bytes]]:
        """Each matching subscription's task, all checked to fit before any is written."""
        limit = self.output.max_record_bytes - TASK_HEADROOM_BYTES
        encoded = encode_tasks((subscription.id for subscription in decision.matched), utcnow(), event.to_record())
        tasks = []
        for subscription, task in zip(decision.matched, encoded):
            # Strict order for an endpoint means one partition: key every task the same.
            key = subscription.id.encode() if subscription.ordering == "strict" else event.partition_key
            if (size := record_size(key, task)) > limit:
                raise InvalidEvent("data", f"too large to deliver: its delivery task would be {size} bytes, over the "
                                           f"limit of {limit} (PIPELINE_MAX_RECORD_BYTES less {TASK_HEADROOM_BYTES} "
                                           "for the headers a task gathers on its way)")
            tasks.append((self.names.endpoint(subscription.id), key, task))
        return tasks

    def _row(self, decision: dict) -> tuple[bytes, bytes]:
        """A routing decision's key and value for the routing topic."""
        return decision["event_id"].encode(), codec("routing_decision").encode(decision)

    def _refuse(self, record: Any, position: Position, exc: InvalidEvent) -> None:
        log.warning("dead-lettering an invalid event at %s: %s", position, exc)
        dead_letter(self.output, self.names.dead_letters, record.key, record.value or b"", position, str(exc),
                    [("error-field", exc.field.encode())])
        self.output.write(self.names.routing, *self._row(invalid_decision(position, exc)))
        self.metrics.refused()

    def _matcher(self) -> Matcher:
        if self._changed:
            for subscription_id in self._changed:
                subscription = self.table.get(subscription_id)
                if subscription is None:
                    self._matcher_cache.remove(subscription_id)
                else:
                    self._matcher_cache.put(subscription)
            self._changed.clear()
        return self._matcher_cache
