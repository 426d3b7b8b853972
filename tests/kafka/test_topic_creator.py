"""Topics asked for together are created in one request; an existing one is no error, a refusal is."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.errors import ServiceError
from pipeline.kafka.admin import TopicSpec, admin_client
from pipeline.kafka.topic_creator import TopicCreator
from tests.polling import wait_until


class SlowAdmin:
    """Answers each CreateTopics after a moment, so asks pile up meanwhile."""

    def __init__(self, refuse: str = "") -> None:
        self.requests: list[list[str]] = []
        self.refuse = refuse
        self.gate = threading.Event()

    def create_topics(self, topics, operation_timeout: float, request_timeout: float):  # type: ignore[no-untyped-def]
        self.requests.append([topic.topic for topic in topics])
        self.gate.wait(5)
        results = {}
        for topic in topics:
            future: Future[None] = Future()
            if topic.topic == self.refuse:
                future.set_exception(KafkaException(KafkaError(KafkaError.POLICY_VIOLATION)))
            elif topic.topic.endswith("existing"):
                future.set_exception(KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS)))
            else:
                future.set_result(None)
            results[topic.topic] = future
        return results


def test_asks_that_come_together_share_one_request() -> None:
    admin = SlowAdmin(refuse="t.refused")
    creator = TopicCreator(admin)  # type: ignore[arg-type]
    names = [f"t.{n}" for n in range(40)] + ["t.existing", "t.refused"]
    with ThreadPoolExecutor(len(names) + 1) as pool:  # one waits on the first request
        first = pool.submit(creator.ensure, TopicSpec(name="t.first", partitions=1))
        while not admin.requests:
            pass  # the first request is out; the rest queue behind it
        rest = {name: pool.submit(creator.ensure, TopicSpec(name=name, partitions=1)) for name in names}
        deadline = time.monotonic() + 10
        while creator._asked.qsize() < len(names) and time.monotonic() < deadline:
            time.sleep(0.001)  # every ask queued behind the first request, however slow the threads start
        admin.gate.set()
        first.result()
        with pytest.raises(ServiceError, match="t.refused"):
            rest.pop("t.refused").result()
        for future in rest.values():
            future.result()  # created, or there already
    assert len(admin.requests) <= 3 and sorted(sum(admin.requests, [])) == sorted(["t.first", *names])


def test_a_topic_is_really_made_on_the_broker(settings) -> None:  # type: ignore[no-untyped-def]
    creator = TopicCreator(admin_client(settings.kafka_bootstrap_servers))
    name = f"{settings.topic_prefix}made"
    creator.ensure(TopicSpec(name=name, partitions=3))
    creator.ensure(TopicSpec(name=name, partitions=3))  # known: no second request
    admin = admin_client(settings.kafka_bootstrap_servers)
    # The broker's metadata may trail the controller by a moment.
    wait_until(lambda: len(admin.list_topics(topic=name, timeout=10).topics[name].partitions) == 3,
               timeout_s=10, what="the topic's three partitions")


class BrokenAdmin:
    """Fails in a way no Kafka error describes, once."""

    def __init__(self) -> None:
        self.calls = 0

    def create_topics(self, topics, operation_timeout: float, request_timeout: float):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 1:
            raise ValueError("unexpected")
        return {topic.topic: _done() for topic in topics}


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


def test_an_unexpected_failure_fails_its_batch_and_not_the_ones_after() -> None:
    creator = TopicCreator(BrokenAdmin())  # type: ignore[arg-type]

    with pytest.raises(ServiceError, match="unexpected"):
        creator.ensure(TopicSpec(name="t.first", partitions=1))
    creator.ensure(TopicSpec(name="t.second", partitions=1))

    assert creator.made("t.second") and not creator.made("t.first")
