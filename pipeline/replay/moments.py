"""Times as people type them: ISO-8601 (`2026-11-22T08:00:00Z`) or an age (`90s`, `15m`, `2h`, `3d`)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from pipeline.errors import InvalidInput

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_moment(text: str, field: str, now: datetime | None = None) -> datetime:
    age = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if age:
        return (now or datetime.now(timezone.utc)) - timedelta(**{UNITS[age[2]]: int(age[1])})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(field, f"{text!r} is neither an ISO-8601 time nor an age like 90m or 2h") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
