"""The sender the admin API and the CLI write subscriptions with."""

from __future__ import annotations

import gc
import threading

from pipeline.config import Settings
from pipeline.kafka.clients import AcknowledgedSender
from pipeline.topics import TopicNames
from tests.polling import wait_until


def pollers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "acknowledgements"}


def test_a_sender_dropped_without_closing_stops_polling(settings: Settings) -> None:
    """Its poller kept it alive: a test's or a script's sender went on reconnecting, and logging
    every failure, to a broker long stopped."""
    before = pollers()
    sender = AcknowledgedSender(settings)
    (poller,) = pollers() - before  # other tests' senders may stop meanwhile: this one is followed
    sender.send(TopicNames.from_settings(settings).events, None, b"")
    del sender
    gc.collect()
    wait_until(lambda: not poller.is_alive(), timeout_s=10, what="the dropped sender's poller to stop")


def test_a_closed_sender_stops_polling(settings: Settings) -> None:
    before = pollers()
    sender = AcknowledgedSender(settings)
    (poller,) = pollers() - before
    sender.close()
    wait_until(lambda: not poller.is_alive(), timeout_s=10, what="the closed sender's poller to stop")
