"""`pipeline run` as a user runs it: a quiet start, the tour last, a killed stage back, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config import Settings
from pipeline.devstack.stages import STAGE_NAMES, pid_file
from pipeline.producer import EventPublisher
from pipeline.receiver import Receiver
from pipeline.subscriptions.commands import SubscriptionCommands
from pipeline.subscriptions.writer import SubscriptionWriter
from tests.conftest import stage_env
from tests.devstack.processes import running
from tests.polling import wait_until

pytestmark = pytest.mark.integration
TOUR_END = "Ctrl-C stops everything"


def test_run_starts_quietly_restarts_a_killed_stage_and_keeps_delivering(settings: Settings, tmp_path: Path) -> None:
    receiver = Receiver()
    base_url = receiver.start()
    SubscriptionCommands(SubscriptionWriter(settings), lambda _: None).create(
        {"name": "run", "url": f"{base_url}/hook", "event_types": ["user.*"]})
    log = tmp_path / "run.log"
    env = stage_env(settings)
    with log.open("wb") as output:
        # A session of its own, so the test can press Ctrl-C as a terminal does: to the whole group.
        run = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "run"], env=env, stdout=output,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        text = wait_until(lambda: TOUR_END in (t := log.read_text()) and t, timeout_s=240, what="the tour")
        _assert_quiet_start_with_the_tour_last(text)

        _deliver(settings, receiver, "user.created", count=1)
        os.kill(int(pid_file(settings.data_dir, "dispatcher").read_text()), signal.SIGKILL)
        _deliver(settings, receiver, "user.updated", count=2)  # published while the dispatcher is down
        assert "dispatcher exited with signal SIGKILL" in log.read_text()
        assert "starting dispatcher again (restart 1)" in log.read_text()

        restarted = CliRunner().invoke(app, ["restart", "router"], env=env)
        assert restarted.exit_code == 0, restarted.output
        wait_until(lambda: "starting router again" in log.read_text(), timeout_s=60, what="the router's restart")
        _deliver(settings, receiver, "user.deleted", count=3)

        stage_pids = [int(pid_file(settings.data_dir, name).read_text()) for name in STAGE_NAMES]
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
        assert run.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        receiver.stop()
    after_stop = log.read_text().split("starting router again")[1]
    assert "again" not in after_stop  # Ctrl-C reached the stages too: none of them was restarted
    assert not any(running(pid) for pid in stage_pids)
    assert not any(pid_file(settings.data_dir, name).exists() for name in STAGE_NAMES)


def _assert_quiet_start_with_the_tour_last(text: str) -> None:
    assert "ERROR" not in text and "\x1b" not in text, text
    tour = text.index("pipeline is running")
    assert text.index("endpoint partitions") < tour  # the dispatcher has joined its group
    assert text.index("results service: store") < tour
    assert "still starting" not in text


def _deliver(settings: Settings, receiver: Receiver, event_type: str, count: int) -> None:
    with EventPublisher(settings) as publisher:
        publisher.publish_fields(type=event_type, ordering_key="user-1", source="test", data=b"{}")
    wait_until(lambda: len(receiver.deliveries) >= count, timeout_s=120, what=f"delivery {count}")
