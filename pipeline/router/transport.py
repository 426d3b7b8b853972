"""faust's aiokafka transport, with the fetch settings set where faust has no setting for them.

An event is fetched as soon as it is in the log (FETCH_MIN_BYTES = 1): a larger minimum saved
the router some CPU per event at a trickle, but every webhook then waited up to the maximum wait
on this hop. Under a burst the fetches are full anyway. FETCH_MAX_WAIT_MS only bounds how long
an idle fetch is held open by the broker. Both are set on the consumer faust creates, before it
starts.
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

    def verify_event_path(self, now: float, tp: Any) -> None:
        """Only the fetch checks. The router removes faust's Monitor (app.py), so the stream checks
        would find no inbound time for any partition and log, every few seconds after five
        minutes, that each busy partition was never processed."""
        self._verify_aiokafka_event_path(now, tp)


class _BatchedFetchConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _BatchedFetchThread(self, loop=self.loop, beacon=self.beacon)


class BatchedFetchTransport(faust_aiokafka.Transport):
    Consumer = _BatchedFetchConsumer
