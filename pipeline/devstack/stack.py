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
import time
from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.kafka.admin import ensure_core_topics

log = logging.getLogger(__name__)
STAGES = ("pipeline.router", "pipeline.dispatcher", "pipeline.results", "pipeline.api")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


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


def run_stack(settings: Settings, on_ready: callable) -> int:
    broker = KafkaBroker(settings)
    started_broker = broker.start()
    ensure_core_topics(settings)
    children = [start_stage(module) for module in STAGES]
    # SIGTERM is turned into the same orderly stop as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    on_ready()
    try:
        while True:
            for child in children:
                if child.process.poll() is not None:
                    log.error("%s exited with %s; stopping the stack", child.name, child.process.returncode)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        stop_children(children)
        if started_broker:
            broker.stop()
