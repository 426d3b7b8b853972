"""A stand-in stage for the supervisor's tests: prints a line, sleeps STAGE_SLEEP_S, exits with STAGE_EXIT_CODE."""

import os
import time

print("stand-in stage started", flush=True)
time.sleep(float(os.environ.get("STAGE_SLEEP_S", "0")))
raise SystemExit(int(os.environ.get("STAGE_EXIT_CODE", "0")))
