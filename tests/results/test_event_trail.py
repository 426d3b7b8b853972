"""One event's trail from embedded ClickHouse: its routing decisions and every attempt per subscription."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from pipeline.results.event_trail import UnknownEvent, event_trail
from pipeline.results.store import AsyncResultsStore, ResultsStore
from pipeline.results.streams import ROUTING


def decision(event_id: str, base, **overrides) -> dict:
    """A routing decision as the router writes it now (events_partition, events_offset) unless overridden."""
    return {"event_id": event_id, "event_type": "order.paid", "source": "shop", "tenant": "acme",
            "event_time": base, "decided_at": base + timedelta(seconds=1), "matched": ["sub_ok", "sub_5xx", "sub_new"],
            "outcome": "routed", "reason": None, "error": None, "events_partition": 3, "events_offset": 41} | overrides


def insert_decisions(store: ResultsStore, decisions: list[dict]) -> None:
    store.insert_rows(ROUTING.table, ROUTING.columns, decisions)


@pytest.fixture
def event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


async def test_each_subscription_gets_its_attempts_in_order_and_a_state(store, attempt, base_time, event_id) -> None:
    insert_decisions(store, [decision(event_id, base_time)])
    common = {"event_id": event_id, "event_type": "order.paid"}
    store.insert_attempts([
        attempt("sub_5xx", outcome="http_error", status_code=500, seconds_later=3, attempt=1, **common),
        attempt("sub_ok", seconds_later=2, **common),
        attempt("sub_5xx", outcome="dead_lettered", status_code=None, seconds_later=5, attempt=2, **common),
        attempt("sub_5xx", outcome="http_error", status_code=500, seconds_later=4, attempt=2, **common),
        attempt("sub_ok", **common | {"event_id": f"evt_{uuid.uuid4().hex}"}),  # another event's
    ])
    trail = await event_trail(AsyncResultsStore(store), event_id)

    assert (trail["event_type"], trail["tenant"], trail["source"]) == ("order.paid", "acme", "shop")
    assert [(d["outcome"], d["events_partition"], d["events_offset"]) for d in trail["routing"]] == [("routed", 3, 41)]
    assert [(d["subscription_id"], d["state"]) for d in trail["deliveries"]] == [
        ("sub_ok", "delivered"), ("sub_5xx", "dead_lettered"), ("sub_new", "pending")]
    assert [(a["attempt"], a["outcome"]) for a in trail["deliveries"][1]["attempts"]] == [
        (1, "http_error"), (2, "http_error"), (2, "dead_lettered")]


async def test_a_failing_delivery_is_retrying_and_a_tenant_sees_only_its_own(store, attempt, base_time,
                                                                             event_id) -> None:
    store.insert_attempts([attempt("sub_5xx", outcome="timeout", status_code=None, event_id=event_id)])
    trail = await event_trail(AsyncResultsStore(store), event_id, "acme")
    assert trail["routing"] == [] and trail["source"] is None  # sent straight to its subscription: no decision
    assert [(d["subscription_id"], d["state"]) for d in trail["deliveries"]] == [("sub_5xx", "retrying")]
    with pytest.raises(UnknownEvent):
        await event_trail(AsyncResultsStore(store), event_id, "globex")
    with pytest.raises(UnknownEvent):
        await event_trail(AsyncResultsStore(store), f"evt_{uuid.uuid4().hex}")


async def test_every_decision_shows_and_old_ones_have_no_position(store, base_time, event_id) -> None:
    older = {name: value for name, value in decision(event_id, base_time, outcome="dropped", reason="paused",
                                                     matched=[]).items() if not name.startswith("events_")}
    insert_decisions(store, [older, decision(event_id, base_time + timedelta(minutes=1), matched=["sub_ok"])])
    trail = await event_trail(AsyncResultsStore(store), event_id)
    assert [(d["reason"], d["events_offset"]) for d in trail["routing"]] == [("paused", None), (None, 41)]
    assert [(d["subscription_id"], d["state"]) for d in trail["deliveries"]] == [("sub_ok", "pending")]


def test_event_ids_are_looked_up_through_a_skip_index(store) -> None:
    indexes = store.client.query("SELECT table, type FROM system.data_skipping_indices "
                                 "WHERE database = currentDatabase() AND name = 'event_id_lookup'").result_rows
    assert sorted(indexes) == [("delivery_attempts", "bloom_filter"), ("routing_decisions", "bloom_filter")]
