"""What the router accepts from the events topic.

An event must decode and validate (see `pipeline.models.decode_event`), and an event with an
ordering key must have been published with that key as its Kafka key. Order per key holds only
within a partition: a publisher that leaves the key out (or sets another) spreads a key's events
over partitions, and once they are apart no reader can tell their order again. Such an event is
refused with the reason rather than delivered out of order without a word. An event without an
ordering key has no order to keep, so any Kafka key will do.
"""

from __future__ import annotations

from pipeline.errors import InvalidEvent
from pipeline.kafka.position import Position
from pipeline.models import Event, decode_event


def admit(key: bytes | None, value: bytes | None, position: Position) -> Event:
    """The event in a record of the events topic; InvalidEvent naming the field otherwise."""
    event = decode_event(value, position)
    if event.ordering_key and key != event.ordering_key.encode():
        raise InvalidEvent("key", f"the Kafka key is {_shown(key)}, not the ordering_key {event.ordering_key!r}: "
                                  "a key's events stay in order only if each is published with its ordering_key "
                                  "as the Kafka key")
    return event


def _shown(key: bytes | None) -> str:
    if key is None:
        return "missing"
    text = key.decode("utf-8", "replace")
    return repr(text if len(text) <= 64 else text[:64] + "...")
