"""`pipeline run` (the whole local stack), one command per stage, and `pipeline restart STAGE`."""

from __future__ import annotations

import logging
import os
import runpy
import signal
from typing import TYPE_CHECKING

import typer

from pipeline.cli.output import console, errors
from pipeline.devstack.stages import STAGE_NAMES, STAGES, StageSpec, running_pid, stage_named

if TYPE_CHECKING:
    from pipeline.config import Settings

DEMO_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks example secret, for the tour


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    for spec in STAGES:
        app.command(spec.name, short_help=spec.summary, rich_help_panel="Stages",
                    help=f"{spec.summary}\n\nOne process of this stage, as `pipeline run` starts it (`python -m "
                         f"{spec.module}`), configured by the same settings.")(_stage_command(spec))
    app.command("restart", rich_help_panel="Stages")(restart)


STAGE_LIST = ", ".join(STAGE_NAMES)
SKIP = typer.Option([], "--skip", metavar="STAGE",
                    help=f"Leave this stage out, to run it yourself; repeatable ({STAGE_LIST}).")


def run(skip: list[str] = SKIP) -> None:
    """Start Kafka and every stage; a stage that dies starts again; Ctrl-C stops them all."""
    from pipeline.config import Settings
    from pipeline.devstack.stack import run_stack

    unknown = sorted(set(skip) - set(STAGE_NAMES))
    if unknown:
        raise typer.BadParameter(f"no stage {', '.join(unknown)} (stages: {STAGE_LIST})", param_hint="--skip")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings()
    raise typer.Exit(run_stack(settings, on_ready=lambda waiting: _print_tour(settings, waiting, skip), skip=skip))


def _stage_command(spec: StageSpec):
    def command() -> None:
        runpy.run_module(spec.module, run_name="__main__", alter_sys=True)  # exactly `python -m <module>`

    command.__name__ = spec.name
    return command


def restart(stage: str = typer.Argument(..., metavar="STAGE", help=f"One of {STAGE_LIST}.")) -> None:
    """Stop one stage of the running `pipeline run`, which starts it again at once."""
    from pipeline.config import Settings

    if stage not in STAGE_NAMES:
        raise typer.BadParameter(f"no stage {stage} (stages: {STAGE_LIST})", param_hint="STAGE")
    pid = running_pid(Settings().data_dir, stage_named(stage))
    if pid is None:
        errors.print(f"[red]error:[/red] no {stage} of `pipeline run` is running (with this PIPELINE_DATA_DIR)")
        raise typer.Exit(1)
    os.kill(pid, signal.SIGTERM)
    console.print(f"stopping {stage} (pid {pid}); `pipeline run` starts it again")


def _print_tour(settings: Settings, waiting: list[str], skipped: list[str]) -> None:
    from pipeline.tokens import local_admin_token

    console.rule("[bold green]pipeline is running")
    _line("Kafka", f"{settings.kafka_bootstrap_servers} (data in {settings.data_dir / 'kafka'})")
    _line("ClickHouse", settings.resolved_clickhouse_dsn)
    _line("admin API", f"http://127.0.0.1:{settings.api_port}/docs")
    if not settings.api_tokens:
        token = local_admin_token(settings.data_dir)
        _line("API token", f"{settings.data_dir / 'api-admin-token'} (admin; PIPELINE_API_TOKENS sets others)")
        _line("dashboard", f"http://127.0.0.1:{settings.api_port}/dashboard/#token={token}")
    _line("results/stats", f"http://127.0.0.1:{settings.results_port}/v1/stats (with the API token)")
    _line("metrics", _metrics_urls(settings))
    _line("deliveries", "to 127.0.0.0/8 over plain http allowed, for trying")
    if skipped:
        _line("left out", f"{', '.join(skipped)}: run it with `pipeline {skipped[0]}`")
    if waiting:
        _line("still starting", ", ".join(waiting))
    console.print("\nTry it, in another terminal (after `. .venv/bin/activate`):")
    for command in (
        f"pipeline receiver --secret {DEMO_SECRET}",
        f"pipeline subscriptions create --name demo --url http://127.0.0.1:{settings.receiver_port}/hook "
        f"-e 'user.*' --secret {DEMO_SECRET}",
        "pipeline publish --type user.created --key user-1 --data '{\"name\": \"Ada\"}'",
        "pipeline stats",
    ):
        console.print(f"  {command}", soft_wrap=True, markup=False, highlight=False)
    console.print("\nA stage that dies starts again; `pipeline restart STAGE` restarts one.")
    console.print("Ctrl-C stops everything; the data stays for the next run.")
    console.rule()


def _metrics_urls(settings: Settings) -> str:
    """Each stage's /metrics, for Prometheus (deploy/grafana/prometheus/prometheus.yml scrapes them)."""
    ports = [settings.router_metrics_port, settings.dispatcher_metrics_port, settings.results_port, settings.api_port]
    return " ".join(f"http://127.0.0.1:{port}/metrics" for port in ports if port)


def _line(label: str, value: str) -> None:
    # soft_wrap: a long URL stays one line for the terminal to wrap, so it copies whole.
    console.print(f"{label:<15}{value}", soft_wrap=True, markup=False, highlight=False)
