"""The router admits an event with an ordering key only under that key: elsewhere its order is lost."""

from __future__ import annotations

import pytest

from pipeline.errors import InvalidEvent
from pipeline.kafka.position import Position
from pipeline.router.admission import admit

AT = Position(topic="events", partition=0, offset=7, timestamp_ms=1_700_000_000_000)
KEYED = b'{"type": "user.updated", "ordering_key": "user-1", "data": {}}'


def test_an_event_published_under_its_ordering_key_is_admitted() -> None:
    assert admit(b"user-1", KEYED, AT).ordering_key == "user-1"


@pytest.mark.parametrize("key, shown", [(None, "missing"), (b"user-2", "'user-2'"), (b"", "''")])
def test_an_event_under_another_key_or_none_is_refused_naming_the_key(key: bytes | None, shown: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        admit(key, KEYED, AT)
    assert caught.value.field == "key"
    assert f"the Kafka key is {shown}, not the ordering_key 'user-1'" in caught.value.problem


@pytest.mark.parametrize("key", [None, b"anything", b""])
def test_an_event_without_an_ordering_key_has_no_order_to_keep_and_any_key_will_do(key: bytes | None) -> None:
    assert admit(key, b'{"type": "order.paid", "data": {}}', AT).ordering_key is None
