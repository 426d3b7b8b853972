"""The score `make mutate` holds the unit tests to, from mutmut's summary (mutants/mutmut-cicd-stats.json).

A mutant is caught when a test failed on it, or when mutmut stopped it for running far longer than
the tests do (an endless loop is caught too). Survivors, mutants that no test ran, suspicious ones
and any left unchecked count against the score. Exits 1 below the bar.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BAR_PERCENT = 97.0


def main(stats_path: Path = Path("mutants/mutmut-cicd-stats.json")) -> int:
    stats = json.loads(stats_path.read_text())
    caught = stats["killed"] + stats["timeout"]
    counted = stats["total"] - stats["skipped"]
    score = 100 * caught / counted if counted else 0.0
    print(f"mutation score {score:.1f}% (the bar is {BAR_PERCENT:.0f}%): {caught} of {counted} mutants caught, "
          f"{stats['survived']} survived, {stats['no_tests']} not tested, {stats['suspicious']} suspicious")
    return 0 if score >= BAR_PERCENT else 1


if __name__ == "__main__":
    sys.exit(main())
