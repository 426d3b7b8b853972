"""Stage processes under `pipeline run`: one output, and a stage that dies is started again.

Every stage's lines reach our stdout whole and prefixed with the stage's name. A stage that exits
on its own is started again after a delay that doubles with each failure in a row (1 s up to
30 s); one that ran a minute counts as healthy again. A stage that keeps failing at start (five
times in a row) gives up, and with it the stack.
"""

from __future__ import annotations

import ctypes
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline.devstack.stages import StageSpec, pid_file

log = logging.getLogger("pipeline.run")


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    healthy_after_s: float = 60.0
    give_up_after: int = 5  # failures in a row

    def delay(self, failures: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(0, failures - 1))


class StackOutput:
    """Stages' lines on our stdout, whole and prefixed, relayed by the supervisor's own loop (no threads,
    so starting a stage never forks beside a thread that holds a lock)."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout
        self.selector = selectors.DefaultSelector()
        self.last_line_at = time.monotonic()
        self._partial: dict[int, bytes] = {}

    def follow(self, name: str, pipe: IO[bytes]) -> None:
        os.set_blocking(pipe.fileno(), False)
        self._partial[pipe.fileno()] = b""
        self.selector.register(pipe, selectors.EVENT_READ, name)

    def relay(self, timeout_s: float) -> None:
        """Copies what the stages wrote, waiting up to timeout_s for something to come."""
        for key, _ in self.selector.select(timeout_s):
            pipe, name = key.fileobj, key.data
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:  # the stage closed its output: it has exited
                self._write(name, self._partial.pop(pipe.fileno()))
                self.selector.unregister(pipe)
                pipe.close()
                continue
            *lines, self._partial[pipe.fileno()] = (self._partial[pipe.fileno()] + chunk).split(b"\n")
            for line in lines:
                self._write(name, line)

    def drain(self, timeout_s: float = 2.0) -> None:
        """Relays what exited stages left in their pipes."""
        deadline = time.monotonic() + timeout_s
        while self.selector.get_map() and time.monotonic() < deadline:
            self.relay(0.05)

    def _write(self, name: str, line: bytes) -> None:
        if line:
            self.stream.write(f"{name:<10} | {line.decode('utf-8', 'replace').rstrip()}\n")
            self.stream.flush()
            self.last_line_at = time.monotonic()


class SupervisedStage:
    """One stage's process, started again when it dies."""

    def __init__(self, spec: StageSpec, *, env: dict[str, str], data_dir: Path, output: StackOutput,
                 policy: RestartPolicy = RestartPolicy()):
        self.spec = spec
        self.env = {**env, "PYTHONUNBUFFERED": "1"}  # its lines reach us as they are written
        self.pid_file = pid_file(data_dir, spec.name)
        self.output = output
        self.policy = policy
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.failures = 0
        self.restarts = 0
        self.restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", self.spec.module], env=self.env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent)
        self.output.follow(self.spec.name, self.process.stdout)
        self.started_at = time.monotonic()
        self.restart_at = None
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(self.process.pid))

    @property
    def gave_up(self) -> bool:
        return self.failures >= self.policy.give_up_after

    def check(self, stopping: threading.Event) -> None:
        """Notices an exit and schedules the restart; starts the stage again when it is due."""
        if self.process is None or self.gave_up or stopping.is_set():  # Ctrl-C reaches the stages too
            return
        code = self.process.poll()
        if code is None:
            return
        now = time.monotonic()
        if self.restart_at is None:
            self._schedule(code, now)
        elif now >= self.restart_at:
            self.restarts += 1
            log.warning("starting %s again (restart %d)", self.spec.name, self.restarts)
            self.start()

    def _schedule(self, code: int, now: float) -> None:
        ran_s = now - self.started_at
        if ran_s >= self.policy.healthy_after_s:
            self.failures = 0
        if code != 0:  # a clean exit (`pipeline restart`, a SIGTERM) is no failure
            self.failures += 1
        if self.gave_up:
            log.error("%s exited with %s, %d times in a row; giving up", self.spec.name, _describe(code),
                      self.failures)
            return
        delay = self.policy.delay(self.failures)
        self.restart_at = now + delay
        log.warning("%s exited with %s after %.0f s; starting it again in %.0f s", self.spec.name,
                    _describe(code), ran_s, delay)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        self.restart_at = None
        if self.running:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.running:
            self.process.kill()
        if self.process is not None:
            self.process.wait()
        self.pid_file.unlink(missing_ok=True)


def _describe(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def _death_signal_hook() -> Callable[[], None] | None:
    """Run in a new stage between fork and exec: it gets SIGTERM when `pipeline run` dies, even when
    that is killed outright, so no stage outlives it (Linux only). The function is looked up here,
    in the parent, so the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


_die_with_parent = _death_signal_hook()
