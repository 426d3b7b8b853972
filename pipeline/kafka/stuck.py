"""Telling a producer that is stuck from a broker that is away.

After a broker restart, librdkafka now and then keeps a partition's records for good: its
metadata lost the partition's leader ("new leader -1 not found in cache") and never finds it
again, though the broker answers every other request (likely librdkafka issue #4976). Waiting
cannot end that; a new producer, with fresh metadata, writes the same records at once. So a
writer waiting for acknowledgements asks this watch, now and then, whether its producer is stuck:
yes once a record has waited `after_s` for its acknowledgement while the broker answered all
along (one stuck partition while the others flow counts). A broker away is never taken for a
stuck producer, however long it stays away.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pipeline.kafka.admin import broker_answers

# Long enough for a producer to reconnect and write after a broker comes back (librdkafka's
# reconnect backoff reaches 10 s); short enough that a stuck one costs seconds, not minutes.
STUCK_AFTER_S = 20.0
LOOK_EVERY_S = 5.0


class StuckWatch:
    def __init__(self, broker_answers: Callable[[], bool], after_s: float = STUCK_AFTER_S,
                 look_every_s: float = LOOK_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self._broker_answers = broker_answers
        self.after_s, self.look_every_s, self._clock = after_s, look_every_s, clock
        self._answering_since: float | None = None
        self._last_look: float | None = None

    @classmethod
    def of_broker(cls, bootstrap_servers: str) -> StuckWatch:
        """A watch that asks the broker itself whether it answers."""
        return cls(lambda: broker_answers(bootstrap_servers))

    def due(self) -> bool:
        """Whether `stuck()` would ask the broker now (it answers False, without asking, until then)."""
        return self._last_look is None or self._clock() - self._last_look >= self.look_every_s

    def worth_asking(self, waiting_since: float) -> bool:
        """Time to look, and a record has waited at least that long (else records are flowing)."""
        return self.due() and self._clock() - waiting_since >= self.look_every_s

    def stuck(self, waiting_since: float) -> bool:
        """Whether a record has waited for its acknowledgement for `after_s` (`waiting_since`: the
        clock's time it was produced) while the broker answered all along. Asks the broker at
        most once per `look_every_s`: cheap to call in a waiting loop."""
        if not self.worth_asking(waiting_since):
            return False
        now = self._last_look = self._clock()
        if not self._broker_answers():
            self._answering_since = None
            return False
        if self._answering_since is None:
            self._answering_since = now
        return now - max(self._answering_since, waiting_since) >= self.after_s
