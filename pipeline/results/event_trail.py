"""One event's trail: what the router decided for it, and every attempt per subscription.

The answer to "what happened to event X?" (GET /v1/events/{id}, `pipeline events show`). Each
subscription's deliveries get a state from their last row: `delivered`, `retrying` (the last
attempt failed, more are due or the subscription waits), `dead_lettered`, or `pending` (routed
there, no attempt recorded yet).
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import InvalidInput
from pipeline.results.queries import json_safe_row
from pipeline.results.store import AsyncResultsStore

STATES = {"success": "delivered", "dead_lettered": "dead_lettered"}  # any other last outcome: retrying


class UnknownEvent(InvalidInput):
    def __init__(self, event_id: str):
        super().__init__("event_id", f"nothing is recorded about {event_id}: no routing decision and no attempt "
                                     "(the router may not have reached it yet, or it is past the retention)")


async def event_trail(store: AsyncResultsStore, event_id: str, tenant: str = "") -> dict[str, Any]:
    """Of one tenant's events when tenant is set; raises UnknownEvent when nothing is recorded."""
    parameters = {"event_id": event_id, "tenant": tenant}
    routing = await store.query("event_routing", parameters)
    attempts = await store.query("event_attempts", parameters)
    if not routing and not attempts:
        raise UnknownEvent(event_id)
    return trail(event_id, [json_safe_row(row) for row in routing], [json_safe_row(row) for row in attempts])


def trail(event_id: str, routing: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer from the rows of event_routing.sql and event_attempts.sql, both in their order."""
    first = routing[0] if routing else attempts[0]
    return {
        "event_id": event_id,
        "event_type": first["event_type"],
        "tenant": first["tenant"],
        "source": routing[0]["source"] if routing else None,
        "event_time": first["event_time"],
        "routing": routing,
        "deliveries": deliveries(routing, attempts),
    }


def deliveries(routing: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per subscription, attempted ones first (by their first attempt), then those still pending."""
    by_subscription: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_subscription.setdefault(attempt["subscription_id"], []).append(attempt)
    attempted = sorted(by_subscription.items(), key=lambda item: item[1][0]["started_at"])
    found = [{"subscription_id": subscription_id, "state": STATES.get(rows[-1]["outcome"], "retrying"),
              "attempts": rows} for subscription_id, rows in attempted]
    routed_to = dict.fromkeys(subscription for decision in routing for subscription in decision["matched"])
    return found + [{"subscription_id": subscription_id, "state": "pending", "attempts": []}
                    for subscription_id in routed_to if subscription_id not in by_subscription]
