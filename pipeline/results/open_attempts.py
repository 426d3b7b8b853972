"""Attempts whose request went out but whose outcome the sink has not read yet.

The dispatcher writes an attempt's *intent* (the record it would leave as outcome `unknown`)
and waits for Kafka to hold it before sending the request; the attempt's outcome record then
*closes* the intent, under the same attempt id, in the same partition, later. So the sink
stores:
  - an outcome that closes an open intent: once; the intent is forgotten;
  - an outcome whose intent is already closed: nothing (a duplicate; see below);
  - a record without an intent (a dead-lettered delivery, a record from before intents): as it is;
  - an intent: nothing yet. If nothing closes it by its deadline (its request's timeout and
    the grace after the time it was written), its dispatcher died during the request: the
    sink writes the intent back to its partition as the closing record, outcome `unknown`,
    and stores it when it reads it, like any outcome.
Whichever closing record comes first in the partition counts; a dispatcher's outcome written
after the sink's `unknown` (a dispatcher stalled past the grace) is dropped, so each request is
counted once, even if the sink wrote its `unknown` twice (a crash before it read it back).

The open intents of a partition are known from the log itself: the sink commits, as its
position, the offset of the oldest intent still open (see sink_position), so whoever reads the
partition next reads from there again to learn them, storing nothing before where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

OPEN, CLOSE = "open", "close"
DEFAULT_GRACE_S = 60.0


@dataclass(frozen=True)
class OpenAttempt:
    offset: int
    intent: dict[str, Any]
    deadline: float  # Unix seconds: its outcome is written by then if its dispatcher lives

    def closing_unknown(self) -> dict[str, Any]:
        """The record that closes it as outcome `unknown` (the intent carries that outcome already)."""
        return self.intent | {"intent": CLOSE, "timeout_ms": 0}


class OpenAttempts:
    """The open intents of one partition, as of every record taken so far."""

    def __init__(self, grace_s: float, opened: dict[str, OpenAttempt] | None = None):
        self.grace_s = grace_s
        self.opened = opened if opened is not None else {}

    def copy(self) -> OpenAttempts:
        return OpenAttempts(self.grace_s, dict(self.opened))

    def take(self, record: dict[str, Any], offset: int, timestamp_ms: int) -> dict[str, Any] | None:
        """The row a record makes, if any; an intent it opens or closes is noted."""
        kind = record.get("intent", "")
        if kind == OPEN:
            deadline = timestamp_ms / 1000 + record.get("timeout_ms", 0) / 1000 + self.grace_s
            self.opened[record["attempt_id"]] = OpenAttempt(offset, record, deadline)
            return None
        if kind == CLOSE and self.opened.pop(record["attempt_id"], None) is None:
            _dropped(record, offset)
            return None
        return record

    def relearn(self, record: dict[str, Any], offset: int, timestamp_ms: int) -> None:
        """Takes a record read again only to learn the open intents (its row is stored already).
        A close may find its intent gone: one older than where reading again began, closed already."""
        if record.get("intent", "") == CLOSE:
            self.opened.pop(record["attempt_id"], None)
        else:
            self.take(record, offset, timestamp_ms)

    def floor(self, otherwise: int) -> int:
        """The offset to read again from to learn the open intents: the oldest one's, or `otherwise`."""
        return min((attempt.offset for attempt in self.opened.values()), default=otherwise)

    def overdue(self, now: float) -> list[OpenAttempt]:
        return [attempt for attempt in self.opened.values() if attempt.deadline <= now]


def _dropped(record: dict[str, Any], offset: int) -> None:
    if record["outcome"] == "unknown":
        # The sink wrote it twice, or wrote it while it was still reading the outcome: normal.
        logger.debug("skipping a second unknown outcome of attempt %s (offset %d)", record["attempt_id"], offset)
    else:
        logger.warning("dropping the %s outcome of attempt %s (offset %d): it came after the attempt was recorded "
                       "as unknown, or twice", record["outcome"], record["attempt_id"], offset)
