"""faust's aiokafka transport, with fetches that wait a moment for more than one event.

faust asks the broker for events with aiokafka's default `fetch_min_bytes=1`, so at a steady
trickle every event arrives in a fetch round of its own, and faust's per-round work (across
its consumer thread) costs more than routing the event. Waiting up to FETCH_MAX_WAIT_MS for
FETCH_MIN_BYTES halves the router's CPU per event at a few hundred events a second; under a
burst the fetches are full anyway and nothing waits. faust has no setting for either value,
so they are set on the consumer it creates, before it starts.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MIN_BYTES = 1
FETCH_MAX_WAIT_MS = 100


class _BatchedFetchThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_min_bytes = FETCH_MIN_BYTES  # read by start(), which builds the fetcher
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _BatchedFetchConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _BatchedFetchThread(self, loop=self.loop, beacon=self.beacon)


class BatchedFetchTransport(faust_aiokafka.Transport):
    Consumer = _BatchedFetchConsumer
