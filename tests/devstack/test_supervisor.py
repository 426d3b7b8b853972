"""The supervisor behind `pipeline run`: a stage that dies starts again, with backoff, and says so."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.devstack.stack import run_stack
from pipeline.devstack.stages import StageSpec, pid_file
from pipeline.devstack.supervisor import RestartPolicy, StackOutput, SupervisedStage
from tests.devstack.processes import running
from tests.polling import wait_until

STAND_IN = StageSpec(name="stand-in", module="tests.devstack.short_lived_stage", summary="for tests")
QUICK = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, give_up_after=3)


def supervised(tmp_path: Path, exit_code: int, sleep_s: float = 0.0,
               policy: RestartPolicy = QUICK) -> tuple[SupervisedStage, io.StringIO]:
    env = {**os.environ, "STAGE_EXIT_CODE": str(exit_code), "STAGE_SLEEP_S": str(sleep_s)}
    lines = io.StringIO()
    return SupervisedStage(STAND_IN, env=env, data_dir=tmp_path, output=StackOutput(lines), policy=policy), lines


def watch(stage: SupervisedStage, until, timeout_s: float = 60.0) -> None:
    """The supervisor's loop, for one stage, until the condition holds."""
    stopping = threading.Event()

    def step() -> bool:
        stage.output.relay(0.02)
        stage.check(stopping)
        return until()

    wait_until(step, timeout_s=timeout_s, interval_s=0, what="the supervised stage")


def test_restart_delays_double_up_to_a_cap() -> None:
    assert [RestartPolicy().delay(failures) for failures in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_stage_that_keeps_failing_is_restarted_then_given_up(tmp_path: Path, caplog) -> None:
    stage, lines = supervised(tmp_path, exit_code=3)
    stage.start()

    watch(stage, lambda: stage.gave_up)

    assert stage.restarts == QUICK.give_up_after - 1
    assert lines.getvalue().count("stand-in   | stand-in stage started\n") == QUICK.give_up_after
    assert "stand-in exited with code 3 after 0 s; starting it again in 0 s" in caplog.text
    assert "stand-in exited with code 3, 3 times in a row; giving up" in caplog.text


def test_a_clean_exit_is_started_again_and_is_no_failure(tmp_path: Path) -> None:
    stage, _ = supervised(tmp_path, exit_code=0)
    stage.start()

    watch(stage, lambda: stage.restarts >= QUICK.give_up_after + 1)

    assert not stage.gave_up and stage.failures == 0


def test_a_stage_that_ran_long_enough_starts_its_backoff_over(tmp_path: Path) -> None:
    policy = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, healthy_after_s=0.0, give_up_after=2)
    stage, _ = supervised(tmp_path, exit_code=1, policy=policy)
    stage.start()

    watch(stage, lambda: stage.restarts >= 3)

    assert not stage.gave_up and stage.failures == 1


def test_a_stage_that_ends_while_the_stack_stops_is_not_started_again(tmp_path: Path, caplog) -> None:
    stage, _ = supervised(tmp_path, exit_code=0)
    stage.start()
    stopping = threading.Event()
    stopping.set()  # Ctrl-C: the stages got it too, and end

    stage.process.wait(30)
    stage.check(stopping)

    assert stage.restart_at is None and stage.restarts == 0 and "again" not in caplog.text


def test_the_pid_file_names_the_running_process_until_it_is_killed(tmp_path: Path) -> None:
    stage, _ = supervised(tmp_path, exit_code=0, sleep_s=60)
    stage.start()
    try:
        assert pid_file(tmp_path, STAND_IN.name).read_text() == str(stage.process.pid)
    finally:
        stage.kill()
    assert not pid_file(tmp_path, STAND_IN.name).exists()


ORPHANING = """
import io, os, sys
from pathlib import Path
from pipeline.devstack.stages import StageSpec
from pipeline.devstack.supervisor import StackOutput, SupervisedStage
lines = io.StringIO()
stage = SupervisedStage(StageSpec(name="s", module="tests.devstack.short_lived_stage", summary=""),
                        env={**os.environ, "STAGE_SLEEP_S": "120"}, data_dir=Path(sys.argv[1]),
                        output=StackOutput(lines))
stage.start()
while not lines.getvalue():  # the stage is past its output: now only its parent's end can stop it
    stage.output.relay(1.0)
print(stage.process.pid, flush=True)
os.kill(os.getpid(), 9)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_no_stage_outlives_a_supervisor_killed_outright(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", ORPHANING, str(tmp_path)], capture_output=True, text=True,
                            timeout=60)
    stage_pid = int(result.stdout.split()[0])

    wait_until(lambda: not running(stage_pid), timeout_s=30, what=f"stage {stage_pid} to end")


@pytest.mark.integration
def test_the_run_stops_when_a_stage_keeps_failing(settings: Settings, monkeypatch, caplog) -> None:
    monkeypatch.setenv("STAGE_EXIT_CODE", "3")

    code = run_stack(settings, on_ready=lambda waiting: None, specs=[STAND_IN], policy=QUICK)

    assert code == 1
    assert "stand-in exited with code 3, 3 times in a row; giving up" in caplog.text
    assert not pid_file(settings.data_dir, STAND_IN.name).exists()
