"""The whole local stack as child processes: broker, router, dispatcher, results service, admin API.

Ctrl-C (or SIGTERM) stops the stages first, then the broker if this run started it.
The data directory is kept, so the next run picks up where this one stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.kafka.admin import ensure_core_topics

log = logging.getLogger(__name__)
STOP_SIGNAL_GRACE_S = 2.0
STAGES = ("pipeline.router", "pipeline.dispatcher", "pipeline.results", "pipeline.api")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def local_environment() -> dict[str, str]:
    """`make run` is for trying things with a receiver on this machine: loopback and plain http are
    allowed unless set otherwise. A deployment leaves both unset, so the SSRF guard refuses them."""
    env = os.environ.copy()
    env.setdefault("PIPELINE_ALLOWED_NETWORKS", "127.0.0.0/8")
    env.setdefault("PIPELINE_ALLOW_HTTP", "true")
    return env


def start_stage(module: str, env: dict[str, str] | None = None) -> Child:
    process = subprocess.Popen([sys.executable, "-m", module], env=env or os.environ.copy(),
                               stdin=subprocess.DEVNULL)
    return Child(name=module.rsplit(".", 1)[-1], process=process)


def stop_children(children: list[Child], timeout_s: float = 15.0) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def run_stack(settings: Settings, on_ready: Callable[[], None]) -> int:
    """Runs until Ctrl-C or SIGTERM (0), or until a stage dies on its own (1)."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    broker = KafkaBroker(settings)
    started_broker = broker.start()
    children: list[Child] = []
    try:
        ensure_core_topics(settings)
        children = [start_stage(module, local_environment()) for module in STAGES]
        on_ready()
        return _watch(children, stopping)
    finally:
        stop_children(children)
        if started_broker:
            broker.stop()


def _watch(children: list[Child], stopping: threading.Event) -> int:
    while not stopping.wait(0.5):
        dead = [child for child in children if child.process.poll() is not None]
        # Ctrl-C reaches the whole process group: a stage may stop before our own handler runs.
        if dead and not stopping.wait(STOP_SIGNAL_GRACE_S):
            log.error("%s exited with %s; stopping the stack", dead[0].name, dead[0].process.returncode)
            return 1
    return 0
