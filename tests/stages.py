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


def start_stage(settings: Settings, name: str, log_dir: Path) -> subprocess.Popen[bytes]:
    """One stage's process; its output is added to the stage's log (a restarted stage's too)."""
    module = name.split("#")[0]  # "pipeline.dispatcher#2": a second process of the same stage
    with (log_dir / f"{name}.log").open("ab") as output:
        return subprocess.Popen([sys.executable, "-m", module], env=stage_env(settings),
                                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@contextmanager
def running_stages(settings: Settings, modules: list[str], log_dir: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The stages' processes by name; a test that restarts one puts the new process in its place,
    and it is stopped at the end like the others."""
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in modules:
            processes[name] = start_stage(settings, name, log_dir)
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


@contextmanager
def logs_on_failure(*log_dirs: Path) -> Iterator[None]:
    """Prints the stages' logs when the block fails: what a failed wait needs to be understood."""
    try:
        yield
    except AssertionError:
        print(*(stage_logs(log_dir) for log_dir in log_dirs if log_dir.exists()), sep="\n")
        raise


def stage_logs(log_dir: Path) -> str:
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in sorted(log_dir.glob("*.log")))
