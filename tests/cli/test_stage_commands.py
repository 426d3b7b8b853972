"""`pipeline <stage>` runs one stage; `pipeline restart` and `pipeline run --skip` refuse what is not a stage."""

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
from pipeline.devstack.readiness import port_answers
from pipeline.devstack.stages import pid_file, running_pid, stage_named
from tests.conftest import stage_env
from tests.polling import wait_until


def test_run_refuses_to_skip_what_is_not_a_stage() -> None:
    result = CliRunner().invoke(app, ["run", "--skip", "routr"])

    assert result.exit_code == 2
    assert "no stage routr (stages: router, dispatcher, results, api)" in _unboxed(result.output)


def test_restart_says_when_no_run_is_there_to_restart_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["restart", "router"], env={"PIPELINE_DATA_DIR": str(tmp_path)})

    assert result.exit_code == 1
    assert "no router of `pipeline run` is running" in result.output


def test_a_pid_file_naming_another_process_is_not_the_stage(tmp_path: Path) -> None:
    pid_file(tmp_path, "router").parent.mkdir(parents=True)
    pid_file(tmp_path, "router").write_text(str(os.getpid()))  # pytest: a live process, not the router

    assert running_pid(tmp_path, stage_named("router")) is None


@pytest.mark.integration
def test_pipeline_results_runs_the_results_service(settings: Settings) -> None:
    stage = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "results"], env=stage_env(settings),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_answers(settings.results_port) or stage.poll() is not None, timeout_s=120,
                   what="the results service's port")
        assert stage.poll() is None, stage.stdout.read().decode()
    finally:
        stage.send_signal(signal.SIGTERM)
        output = stage.communicate(timeout=60)[0].decode()
    assert stage.returncode == 0, output
    assert "results service stopped" in output


def _unboxed(text: str) -> str:
    """Typer's error box, its borders and line breaks taken out."""
    return " ".join(text.replace("│", " ").split())
