"""How long each step of a slow operation took, for its log line."""

from __future__ import annotations

import time


class Laps:
    def __init__(self) -> None:
        self._started = self._last = time.monotonic()
        self._laps: list[tuple[str, float, str]] = []

    def lap(self, step: str, note: str = "") -> None:
        """The step just finished; note, if given, follows its time in brackets."""
        now = time.monotonic()
        self._laps.append((step, now - self._last, note))
        self._last = now

    @property
    def total_s(self) -> float:
        return self._last - self._started

    def __str__(self) -> str:
        steps = ", ".join(f"{step} {seconds:.1f}" + (f" ({note})" if note else "") for step, seconds, note in self._laps)
        return f"{self.total_s:.1f} s ({steps})"
