"""What a delivery's answer means for the next step, as the Standard Webhooks spec recommends:
only 2xx succeeds; 410 Gone disables the endpoint; 429, 502, 503 and 504 ask us to slow down,
and a Retry-After is honoured within bounds; everything else (3xx included) retries on schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

SLOW_DOWN = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Verdict:
    succeeded: bool = False
    disable: bool = False
    retry_after_s: float | None = None  # the endpoint's own wait, already bounded


def judge(status: int | None, headers: dict[str, str], max_retry_after_s: float) -> Verdict:
    """`status` is None when no response came (timeout, connection error): retry on schedule."""
    if status is None:
        return Verdict()
    if 200 <= status < 300:
        return Verdict(succeeded=True)
    if status == 410:
        return Verdict(disable=True)
    if status in SLOW_DOWN:
        wait = retry_after(headers.get("retry-after"))
        return Verdict(retry_after_s=None if wait is None else min(wait, max_retry_after_s))
    return Verdict()


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone takes "²", which float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
