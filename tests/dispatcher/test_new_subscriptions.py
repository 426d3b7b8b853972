"""The dispatcher looks up a new subscription's topic when the subscription appears, not later."""

from __future__ import annotations

from types import SimpleNamespace

from pipeline.dispatcher.consumer import _NewSubscriptions


def test_only_a_subscription_not_seen_before_asks_for_a_lookup() -> None:
    table = SimpleNamespace(version=1, rows={"sub_a": object()})
    watch = _NewSubscriptions(table)
    assert watch.appeared()  # the table as loaded: look up once
    assert not watch.appeared()  # nothing changed
    table.version, table.rows = 2, {"sub_a": object()}  # an edit of a known subscription
    assert not watch.appeared()
    table.version, table.rows = 3, {"sub_a": object(), "sub_b": object()}
    assert watch.appeared()
    table.version, table.rows = 4, {"sub_b": object()}  # a deletion needs no lookup
    assert not watch.appeared()
