"""The admin API (FastAPI; OpenAPI at /docs), authenticated by API tokens.

Subscriptions are read from a live table and written to the compacted topic; statistics and
event lookups come from the results service, the one process that may open an embedded ClickHouse
directory; events published over HTTP go to the events topic as the SDK writes them.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from pipeline.api import event_routes, publish_routes
from pipeline.api.auth import caller_from
from pipeline.api.backlog_routes import backlog_router
from pipeline.api.errors import install_error_handlers
from pipeline.api.event_routes import event_router
from pipeline.api.metrics_routes import install_metrics
from pipeline.api.publish_routes import Publishing, publish_router
from pipeline.api.stats_routes import mount_dashboard, stats_router
from pipeline.api.subscription_routes import recovery_router, subscription_router
from pipeline.config import Settings
from pipeline.metrics.api import ApiMetrics
from pipeline.producer.tasks import TaskPublisher
from pipeline.replay.replayer import Replayer
from pipeline.replay.resend import Resender
from pipeline.subscriptions.backlog import BacklogReader
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.table import SubscriptionTable
from pipeline.subscriptions.writer import SubscriptionWriter
from pipeline.tokens import PUBLISH, load_tokens


def create_app(settings: Settings) -> FastAPI:
    table = SubscriptionTable(settings)
    # Each write waits until this process's table has read it, so a read right after it sees it.
    writer = SubscriptionWriter(settings, topic_pool=settings.endpoint_topic_pool)
    commands = SubscriptionCommands(writer, table.get, table.settled_blocking)
    tokens = load_tokens(settings)
    caller = caller_from(tokens)
    results_url = f"http://127.0.0.1:{settings.results_port}"
    tasks = TaskPublisher(settings)
    publishing = Publishing(settings)
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    metrics.pooled_topics.set_function(writer.pooled)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        follower = asyncio.create_task(table.run())
        await table.wait_loaded(timeout_s=60)
        await publishing.start()
        yield
        await publishing.stop()
        await asyncio.to_thread(writer.close)
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

    app = FastAPI(title="Webhook pipeline admin API", version="0.1.0", lifespan=lifespan)
    install_metrics(app, registry, metrics)
    replayer = Replayer(settings)
    app.include_router(recovery_router(replayer, caller))
    # Before the subscription routes, whose /{subscription_id} would not take the extra segment anyway.
    app.include_router(backlog_router(table, commands, BacklogReader(settings), caller))
    app.include_router(subscription_router(table, commands, tasks, replayer, caller,
                                           timedelta(seconds=settings.secret_rotation_overlap_s)))
    app.include_router(publish_router(publishing, caller_from(tokens, PUBLISH), metrics.published))
    app.include_router(event_router(Resender(settings, tasks), table, results_url, caller))

    install_error_handlers(app, {**publish_routes.ERROR_STATUSES, **event_routes.ERROR_STATUSES})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "subscriptions": len(table.rows), "endpoint_topics_ready": writer.pooled()}

    app.include_router(stats_router(results_url, caller))
    mount_dashboard(app)

    return app
