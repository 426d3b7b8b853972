"""Time ranges and steps of the statistics queries: parsed from request parameters, checked,
and aligned the way ClickHouse's toStartOfInterval buckets time (multiples of the step since
the Unix epoch), so the buckets Python fills and the buckets ClickHouse returns are the same."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pipeline.errors import InvalidInput

DEFAULT_SPAN = timedelta(hours=1)
# Steps an automatic choice picks from; any multiple of 60 s may be asked for.
NICE_STEPS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
AUTO_POINTS = 120
MAX_POINTS = 1500
RELATIVE = re.compile(r"^-?(\d+)([smhdw])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class TimeRange:
    start: datetime  # aligned down to the step
    end: datetime
    step_s: int

    @property
    def times(self) -> list[datetime]:
        """The start of every bucket in the range."""
        count = -(-int((self.end - self.start).total_seconds()) // self.step_s)
        return [self.start + timedelta(seconds=self.step_s * index) for index in range(count)]

    def parameters(self) -> dict[str, str | int]:
        return {"from": clickhouse_time(self.start), "to": clickhouse_time(self.end), "step_s": self.step_s}


def clickhouse_time(moment: datetime) -> str:
    """The form a DateTime('UTC') query parameter takes (whole seconds, UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def parse_time(text: str | None, now: datetime, field: str) -> datetime | None:
    """ISO 8601 (naive means UTC), `now`, or an age such as `15m`, `-2h`, `7d`."""
    if not text:
        return None
    if text == "now":
        return now
    relative = RELATIVE.match(text)
    if relative:
        return now - timedelta(seconds=int(relative.group(1)) * UNIT_SECONDS[relative.group(2)])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(field, f"{text!r} is neither ISO 8601, `now`, nor an age like 15m, 2h or 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_time_range(query: Mapping[str, str], now: datetime | None = None) -> TimeRange:
    """From `from`, `to` and `step` (seconds) of a request; the last hour by default."""
    now = now or datetime.now(timezone.utc)
    end = parse_time(query.get("to"), now, "to") or now
    start = parse_time(query.get("from"), now, "from") or end - DEFAULT_SPAN
    if start >= end:
        raise InvalidInput("from", "must be before `to`")
    step_s = _step(query.get("step"), end - start)
    aligned = datetime.fromtimestamp(int(start.timestamp()) // step_s * step_s, timezone.utc)
    time_range = TimeRange(aligned, end, step_s)
    if len(time_range.times) > MAX_POINTS:
        raise InvalidInput("step", f"{step_s} s makes more than {MAX_POINTS} points over this range: "
                                   "take a longer step")
    return time_range


def _step(text: str | None, span: timedelta) -> int:
    if not text:
        wanted = span.total_seconds() / AUTO_POINTS
        return next((step for step in NICE_STEPS_S if step >= wanted), NICE_STEPS_S[-1])
    try:
        step_s = int(text)
    except ValueError:
        raise InvalidInput("step", f"{text!r} is not a whole number of seconds") from None
    if step_s < 60 or step_s % 60:
        raise InvalidInput("step", f"{step_s} s is not a multiple of 60 s (the rollups hold one row per minute)")
    return step_s
