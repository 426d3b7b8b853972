"""Runs pipeline stages as real processes for a test, with their output kept for failures."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import Settings
from tests.conftest import stage_env


@contextmanager
def running_stages(settings: Settings, modules: list[str], log_dir: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in modules:
            module = name.split("#")[0]  # "pipeline.dispatcher#2": a second process of the same stage
            output = (log_dir / f"{name}.log").open("wb")
            processes[name] = subprocess.Popen([sys.executable, "-m", module], env=stage_env(settings),
                                                 stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for module, process in processes.items():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stage_logs(log_dir: Path) -> str:
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in sorted(log_dir.glob("*.log")))
