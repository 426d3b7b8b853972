"""Endpoint topics created as subscriptions come, many in one request when they come together.

Each create call is a round trip to the controller, which then writes the new partitions to its
metadata log; a burst of subscriptions (an import, a customer onboarding thousands of endpoints)
makes one CreateTopics request of everything asked for meanwhile instead of one per subscription.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.errors import ServiceError
from pipeline.kafka.admin import TopicSpec

log = logging.getLogger(__name__)
MAX_BATCH = 500
TIMEOUT_S = 30.0


class TopicCreator:
    def __init__(self, admin: AdminClient):
        self._admin = admin
        self._asked: queue.SimpleQueue[tuple[TopicSpec, Future[None]]] = queue.SimpleQueue()
        self._created: set[str] = set()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def ensure(self, spec: TopicSpec) -> None:
        """Returns once the topic exists (made now or before); raises ServiceError if it cannot be made."""
        self.ensure_all([spec])

    def ensure_all(self, specs: list[TopicSpec]) -> None:
        """Returns once every topic exists; raises the first ServiceError of those that cannot be made."""
        asked = [(spec, Future()) for spec in specs if spec.name not in self._created]
        for spec_and_future in asked:
            self._asked.put(spec_and_future)
        if asked:
            self._start()
        for spec, done in asked:
            done.result()
            self._created.add(spec.name)

    def made(self, name: str) -> bool:
        """Whether this creator has seen the topic exist."""
        return name in self._created

    def _start(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="topic-creator", daemon=True)
                self._worker.start()

    def _serve(self) -> None:
        while True:
            batch = [self._asked.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._asked.get_nowait())
                except queue.Empty:
                    break
            try:
                self._create(batch)
            except Exception as exc:  # the worker outlives a bad batch: callers wait on its futures
                log.exception("creating topics failed")
                for _, done in batch:
                    if not done.done():
                        done.set_exception(ServiceError(f"could not create topics: {exc}"))

    def _create(self, batch: list[tuple[TopicSpec, Future[None]]]) -> None:
        specs = {spec.name: spec for spec, _ in batch}
        wanted = [NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config) for s in specs.values()]
        try:
            # The broker answers once the topics are created, not merely accepted.
            results = self._admin.create_topics(wanted, operation_timeout=TIMEOUT_S, request_timeout=TIMEOUT_S)
        except KafkaException as exc:
            for _, done in batch:
                done.set_exception(ServiceError(f"could not create topics: {exc}"))
            return
        outcome = {name: _outcome(name, future) for name, future in results.items()}
        for spec, done in batch:
            error = outcome.get(spec.name)
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)


def _outcome(name: str, future: Future[None]) -> ServiceError | None:
    try:
        future.result()
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            return ServiceError(f"could not create topic {name}: {exc}")
    return None
