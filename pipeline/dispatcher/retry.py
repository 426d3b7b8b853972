"""When to try a failed delivery again: the schedule is data, with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RetrySchedule:
    """delays_s[n] is the wait before attempt n+1; the first entry is the first try (usually 0)."""

    delays_s: tuple[float, ...]
    jitter: float = 0.2

    def delay_before(self, attempt: int, rng: random.Random | None = None, *, endless: bool = False) -> float | None:
        """Seconds to wait before `attempt` (1-based), or None when the schedule is spent; an
        endless schedule repeats its last delay instead."""
        if attempt > len(self.delays_s) and not endless:
            return None
        base = self.delays_s[min(attempt, len(self.delays_s)) - 1]
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))
