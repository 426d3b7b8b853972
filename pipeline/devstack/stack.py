"""The whole local stack as child processes: broker, router, dispatcher, results service, admin API.

The stages start once the broker serves their partitions and consumer groups, so a healthy start
logs no errors; `on_ready` is called once they all serve and their start-up lines are out, so
what it prints comes last. A stage that dies is started again (see supervisor.py).
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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.devstack.readiness import not_ready, wait_until_serving
from pipeline.devstack.stages import STAGES, StageSpec
from pipeline.devstack.supervisor import RestartPolicy, StackOutput, SupervisedStage
from pipeline.kafka.admin import admin_client, ensure_core_topics

log = logging.getLogger("pipeline.run")
READY_TIMEOUT_S = 120.0  # then on_ready is called anyway, naming the stages still starting
QUIET_S = 1.0  # start-up lines have stopped coming for this long
STOP_TIMEOUT_S = 15.0


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


def run_stack(settings: Settings, on_ready: Callable[[list[str]], None], skip: Collection[str] = (),
              specs: Sequence[StageSpec] = STAGES, policy: RestartPolicy = RestartPolicy()) -> int:
    """Runs until Ctrl-C or SIGTERM (0), or until a stage keeps failing (1).
    `on_ready` gets the names of the stages still starting (none, unless they took too long)."""
    stopping = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stopping.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    broker = KafkaBroker(settings)
    started_broker = broker.start()
    output = StackOutput()
    specs = [spec for spec in specs if spec.name not in skip]
    stages = [SupervisedStage(spec, env=local_environment(), data_dir=settings.data_dir, output=output, policy=policy)
              for spec in specs]
    try:
        ensure_core_topics(settings)
        wait_until_serving(settings, [group for spec in specs for group in spec.groups(settings.topic_prefix)])
        for stage in stages:
            stage.start()
        return _watch(settings, stages, output, stopping, on_ready)
    finally:
        _stop(stages, output)
        if started_broker:
            broker.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _watch(settings: Settings, stages: list[SupervisedStage], output: StackOutput, stopping: threading.Event,
           on_ready: Callable[[list[str]], None]) -> int:
    admin = admin_client(settings.kafka_bootstrap_servers)
    ready_by = time.monotonic() + READY_TIMEOUT_S
    waiting: list[str] | None = [stage.spec.name for stage in stages]
    next_look = 0.0
    while not stopping.is_set():
        output.relay(0.25)
        for stage in stages:
            stage.check(stopping)
        if any(stage.gave_up for stage in stages):
            return 1
        now = time.monotonic()
        if waiting is not None and now >= next_look:
            waiting = not_ready(settings, [stage.spec for stage in stages], admin)
            next_look = now + 0.5
            if now > ready_by or (not waiting and now - output.last_line_at >= QUIET_S):
                on_ready(waiting)
                waiting = None
    return 0


def _stop(stages: list[SupervisedStage], output: StackOutput) -> None:
    """SIGTERM to every stage, their last lines relayed while they stop, SIGKILL past the timeout."""
    for stage in stages:
        stage.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(stage.running for stage in stages) and time.monotonic() < deadline:
        output.relay(0.1)
    for stage in stages:
        stage.kill()
    output.drain()
