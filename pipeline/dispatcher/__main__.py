"""`python -m pipeline.dispatcher`: one dispatcher process; start more to share the endpoint topics."""

from __future__ import annotations

import asyncio
import logging
import signal

from pipeline import eventloop
from pipeline.config import Settings
from pipeline.dispatcher.consumer import EndpointConsumer
from pipeline.dispatcher.deliverer import Deliverer
from pipeline.dispatcher.http import make_transport
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.retry import RetrySchedule
from pipeline.subscriptions.table import SubscriptionTable


async def run(settings: Settings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    table = SubscriptionTable(settings)
    table_task = asyncio.create_task(table.run())
    transport = make_transport(settings.http_client, max_connections=settings.max_connections)
    outbox = Outbox(settings)
    deliverer = Deliverer(table=table, transport=transport, outbox=outbox,
                          default_schedule=RetrySchedule(delays_s=settings.retry_schedule_s))
    try:
        await table.wait_loaded(timeout_s=120)
        await EndpointConsumer(settings, deliverer, outbox).run(stopping)
        await outbox.flush()
    finally:
        table_task.cancel()
        await asyncio.gather(table_task, return_exceptions=True)
        await transport.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dispatcher %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    eventloop.run(run(Settings()))


if __name__ == "__main__":
    main()
