"""Whether a process still runs, for tests that end processes."""

from __future__ import annotations

from pathlib import Path


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
