"""Routing decisions as records for the routing topic, so statistics can show drops and why."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pipeline.errors import InvalidEvent
from pipeline.kafka.position import Position
from pipeline.models import Event
from pipeline.router.matching import Decision


def routing_decision(event: Event, decision: Decision, position: Position) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_type": event.type,
        "source": event.source,
        "tenant": event.tenant,
        "event_time": event.time,
        "decided_at": datetime.now(timezone.utc),
        "matched": [subscription.id for subscription in decision.matched],
        "outcome": "routed" if decision.matched else "dropped",
        "reason": decision.reason,
        "error": None,
        **_position(position),
    }


def invalid_decision(position: Position, exc: InvalidEvent) -> dict[str, Any]:
    """An undecodable event has no id of its own: its position in the events topic names it."""
    return {
        "event_id": str(position),
        "event_type": "",
        "source": "",
        "tenant": "",
        "event_time": None,
        "decided_at": datetime.now(timezone.utc),
        "matched": [],
        "outcome": "dropped",
        "reason": "invalid",
        "error": str(exc),
        **_position(position),
    }


def _position(position: Position) -> dict[str, int]:
    """Where the event is in the events topic, so it can be found again to be resent."""
    return {"events_partition": position.partition, "events_offset": position.offset}
