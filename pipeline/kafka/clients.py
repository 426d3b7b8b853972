"""Configuration of the pipeline's Kafka producers and consumers."""

from __future__ import annotations

import logging
import threading
import weakref
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pipeline.config import Settings

LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
# Where the program configured no logging (a script using the SDK, a test session ending),
# librdkafka's lines are dropped rather than printed bare by logging's last resort: a client
# still alive after its broker stopped would print a reconnect failure every second.
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())


# librdkafka leaves Nagle's algorithm on by default: a small request written while an earlier one
# is unanswered then waits for the broker's delayed ACK, up to 40 ms on Linux. Every hop of a
# webhook is a small request, so the pipeline's clients turn it off.
NO_NAGLE = {"socket.nagle.disable": True}


def reliable_producer(settings: Settings, **overrides: Any) -> Producer:
    """Idempotent, acks=all: a published message is never duplicated by a client retry nor lost.

    Keys are partitioned with murmur2, as Java clients and aiokafka (the router's faust producer)
    do: a key lands in the same partition whoever writes it, so a replayed or test task joins
    its key's lane, and events from any Kafka client keep their order per key."""
    config = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
        "compression.type": "lz4",
        **NO_NAGLE,
        "partitioner": "murmur2_random",
        # Writers check sizes against this same limit before they write (see KafkaWriter.fits).
        "message.max.bytes": settings.max_record_bytes,
        # librdkafka's own lines (a broker going away, say) go through logging, formatted and
        # filtered like every other line, instead of straight to stderr.
        "logger": LIBRDKAFKA_LOG,
    }
    config.update(overrides)
    return Producer(config)


def flush_or_raise(producer: Producer, timeout_s: float = 30.0) -> None:
    from pipeline.errors import ServiceError

    remaining = producer.flush(timeout_s)
    if remaining:
        raise ServiceError(f"{remaining} messages were not acknowledged by Kafka within {timeout_s:.0f} s")


class AcknowledgedSender:
    """Sends one record at a time and returns once Kafka acknowledged that record, from any number
    of threads at once (an API's request handlers): each waits for its own record only, where a
    flush per request would wait for everyone's."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0, **overrides: Any):
        self._producer = reliable_producer(settings, **{"linger.ms": 0, **overrides})
        self._timeout_s = timeout_s
        # The poller holds the producer, not the sender: a sender dropped without close() (a
        # script's, a test's) stops its poller, instead of reconnecting forever to a broker gone.
        self._stopped = threading.Event()
        weakref.finalize(self, self._stopped.set)
        threading.Thread(target=_serve_acknowledgements, args=(self._producer, self._stopped),
                         name="acknowledgements", daemon=True).start()

    def send(self, topic: str, key: bytes | None, value: bytes | None,
             headers: list[tuple[str, bytes]] | None = None) -> Message:
        """The record as written, with its partition and offset."""
        from pipeline.errors import ServiceError

        acknowledged: Future[Message] = Future()
        self._producer.produce(topic, key=key, value=value, headers=headers,
                               on_delivery=lambda error, message: _settle(acknowledged, error, message))
        try:
            return acknowledged.result(self._timeout_s)
        except TimeoutError as exc:
            raise ServiceError(f"a record for {topic} was not acknowledged by Kafka within {self._timeout_s:.0f} s") from exc
        except KafkaException as exc:
            raise ServiceError(f"a record for {topic} was not written: {exc}") from exc

    def close(self) -> None:
        self._stopped.set()


def _serve_acknowledgements(producer: Producer, stopped: threading.Event) -> None:
    while not stopped.is_set():
        producer.poll(0.1)


def _settle(acknowledged: Future[Message], error: KafkaError | None, message: Message) -> None:
    if error is None:
        acknowledged.set_result(message)
    else:
        acknowledged.set_exception(KafkaException(error))
