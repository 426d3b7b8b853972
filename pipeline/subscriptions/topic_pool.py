"""Subscription ids whose endpoint topics are made ahead of time, so creating a subscription does
not wait for the broker to create a topic.

An endpoint topic takes the broker 13 to 47 ms of CPU to create (the less, the more topics one
request asks for), and a round trip to the controller; a subscription is otherwise one
acknowledged record. The API keeps `size` ids
ready, their topics made in batches in the background; a new subscription without an id of its
own (and with the default partitions) takes one, and its topic exists already. When the pool is
empty, a subscription waits for its own topic as before: a burst up to the pool's size is
created at the pace of writing records, and beyond it at the pace of creating topics.

Ids are new random ids, made by this process only, so two API processes never hand out the same
one. The topics still unused when the API stops are deleted; an API killed with SIGKILL leaves
them behind (at most `size` topics with no subscription: nothing routes or delivers to them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from pipeline.errors import ServiceError
from pipeline.kafka.admin import TopicSpec
from pipeline.kafka.topic_creator import TopicCreator
from pipeline.models import new_id

log = logging.getLogger(__name__)
BATCH = 100  # topics asked for in one request while filling, once that many are missing
RETRY_AFTER_S = 5.0
CLOSE_WAIT_S = 10.0
QUIET_S = 1.0  # no subscription taken for this long: the burst is over


class TopicPool:
    def __init__(self, creator: TopicCreator, spec_of: Callable[[str], TopicSpec], size: int):
        self._creator = creator
        self._spec_of = spec_of
        self.size = size
        self._ready: deque[str] = deque()
        # Topics are made in batches: the broker spent 47 ms of CPU on a request creating one topic,
        # and 13 ms a topic on requests creating a hundred (measured here, Kafka 4.1).
        self._refill_at = max(1, min(BATCH, size // 10))
        self._short = threading.Event()  # set while a refill may be due
        self._short.set()
        self._refilling = True  # from the moment a refill is due until the pool is full again
        self._closed = threading.Event()
        self._last_take = 0.0
        self._filler = threading.Thread(target=self._fill, name="topic-pool", daemon=True)
        self._filler.start()

    def __len__(self) -> int:
        return len(self._ready)

    def take(self) -> str | None:
        """A subscription id whose endpoint topic exists, or None if none is ready now."""
        self._last_take = time.monotonic()
        try:
            subscription_id = self._ready.popleft()
        except IndexError:
            return None
        finally:
            self._short.set()
        return subscription_id

    def close(self) -> list[str]:
        """Stops filling; the ids nobody took, whose topics the caller deletes."""
        self._closed.set()
        self._short.set()
        self._filler.join(timeout=CLOSE_WAIT_S)  # topics it makes after that are left behind
        unused = list(self._ready)
        self._ready.clear()
        return unused

    def _pause(self) -> float | None:
        """None while no refill is due; else how long to wait before it. During a burst of new
        subscriptions the broker's time goes to them: the pool is refilled once they stop (or run
        it nearly dry). A refill goes on until the pool is full: stopping once fewer than a batch
        were missing left a pool 937 of 1,000 full for good."""
        ready = len(self._ready)
        self._refilling = ready < self.size and (self._refilling or self.size - ready >= self._refill_at)
        if not self._refilling:
            return None
        if ready < self._refill_at:
            return 0.0
        return max(0.0, self._last_take + QUIET_S - time.monotonic())

    def _fill(self) -> None:
        while self._short.wait() and not self._closed.is_set():
            pause = self._pause()
            if pause is None:
                self._short.clear()
                if self._pause() is not None:  # taken between the look and the clear
                    self._short.set()
                continue
            if pause > 0:
                self._closed.wait(pause)
                continue
            ids = [new_id("sub") for _ in range(min(self.size - len(self._ready), BATCH))]
            try:
                self._creator.ensure_all([self._spec_of(subscription_id) for subscription_id in ids])
            except ServiceError as exc:
                log.warning("endpoint topics made ahead: %s; trying again in %.0f s", exc, RETRY_AFTER_S)
                self._ready.extend(i for i in ids if self._creator.made(self._spec_of(i).name))
                self._closed.wait(RETRY_AFTER_S)
                continue
            self._ready.extend(ids)
