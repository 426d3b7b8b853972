"""The sender the admin API and the CLI write subscriptions with."""

from __future__ import annotations

import gc
import threading

from pipeline.config import Settings
from pipeline.kafka.clients import AcknowledgedSender
from pipeline.topics import TopicNames
from tests.polling import wait_until


def pollers() -> int:
    return sum(thread.name == "acknowledgements" for thread in threading.enumerate())


def test_a_sender_dropped_without_closing_stops_polling(settings: Settings) -> None:
    """Its poller kept it alive: a test's or a script's sender went on reconnecting, and logging
    every failure, to a broker long stopped."""
    before = pollers()
    sender = AcknowledgedSender(settings)
    sender.send(TopicNames.from_settings(settings).events, None, b"")
    assert pollers() == before + 1
    del sender
    gc.collect()
    wait_until(lambda: pollers() == before, timeout_s=10, what="the dropped sender's poller to stop")


def test_a_closed_sender_stops_polling(settings: Settings) -> None:
    before = pollers()
    sender = AcknowledgedSender(settings)
    sender.close()
    wait_until(lambda: pollers() == before, timeout_s=10, what="the closed sender's poller to stop")
