"""`python -m pipeline.dispatcher`: one dispatcher process; start more to share the endpoint topics."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from prometheus_client import CollectorRegistry

from pipeline import eventloop
from pipeline.config import Settings
from pipeline.dispatcher.backlog_gauges import BacklogGauges
from pipeline.dispatcher.consumer import EndpointConsumer
from pipeline.dispatcher.deliverer import Deliverer, DeliveryPolicy
from pipeline.dispatcher.disabling import Disabler
from pipeline.dispatcher.http import make_transport
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.relay import RetryRelay
from pipeline.dispatcher.retry import RetrySchedule
from pipeline.metrics.dispatcher import DispatcherMetrics
from pipeline.metrics.loop_lag import LoopLag
from pipeline.metrics.lost import count_lost_records
from pipeline.metrics.server import serve_metrics
from pipeline.subscriptions.backlog import BacklogReader
from pipeline.subscriptions.table import SubscriptionTable


async def run(settings: Settings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    table = SubscriptionTable(settings)
    table_task = asyncio.create_task(table.run())
    transport = make_transport(settings.http_client, max_connections=settings.max_connections,
                               allowed_networks=settings.allowed_networks, allow_http=settings.allow_http,
                               max_connections_per_host=settings.max_connections_per_host)
    outbox = Outbox(settings)
    policy = DeliveryPolicy(default_schedule=RetrySchedule(delays_s=settings.retry_schedule_s),
                            max_retry_after_s=settings.max_retry_after_s,
                            disable_after=timedelta(seconds=settings.auto_disable_after_s),
                            disable_min_failures=settings.auto_disable_min_failures,
                            max_request_bytes=settings.max_request_bytes)
    registry = CollectorRegistry()
    metrics = DispatcherMetrics(registry)
    count_lost_records(registry)
    deliverer = Deliverer(table=table, transport=transport, outbox=outbox, policy=policy,
                          disabler=Disabler(settings, table), metrics=metrics)
    serve_metrics(registry, settings.dispatcher_metrics_port, "dispatcher")
    lag = asyncio.create_task(LoopLag(registry).run())
    try:
        await table.wait_loaded(timeout_s=120)
        eventloop.settled()
        consumer = EndpointConsumer(settings, deliverer, outbox, metrics=metrics)
        gauges = BacklogGauges(BacklogReader(settings), metrics, consumer.owned_subscriptions,
                               consumer.partition_counts, settings.backlog_metrics_interval_s,
                               parked=consumer.parked_subscriptions)
        await asyncio.gather(consumer.run(stopping), RetryRelay(settings, outbox).run(stopping),
                             gauges.run(stopping))
        await outbox.flush()
    finally:
        table_task.cancel()
        lag.cancel()
        await asyncio.gather(table_task, lag, return_exceptions=True)
        await transport.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dispatcher %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    eventloop.run(run(Settings()))


if __name__ == "__main__":
    main()
