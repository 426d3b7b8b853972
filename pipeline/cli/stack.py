"""`pipeline run` (the whole local stack) and `pipeline kafka start|stop|status`."""

from __future__ import annotations

import logging

import typer

from pipeline.cli.output import console
from pipeline.config import Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.devstack.stack import run_stack
from pipeline.kafka.admin import broker_answers, ensure_core_topics
from pipeline.tokens import local_admin_token

DEMO_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks example secret, for the tour
kafka = typer.Typer(help="The local Kafka broker (a real one, fetched from Maven Central once).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.add_typer(kafka, name="kafka")


def run() -> None:
    """Start Kafka and every stage; Ctrl-C stops them all."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    raise typer.Exit(run_stack(settings, on_ready=lambda: _print_tour(settings)))


def _print_tour(settings: Settings) -> None:
    console.rule("[bold green]pipeline is running")
    console.print(f"Kafka          {settings.kafka_bootstrap_servers} (data in {settings.data_dir / 'kafka'})")
    console.print(f"ClickHouse     {settings.resolved_clickhouse_dsn}")
    console.print(f"admin API      http://127.0.0.1:{settings.api_port}/docs")
    if not settings.api_tokens:
        token_file = settings.data_dir / "api-admin-token"
        token = local_admin_token(settings.data_dir)
        console.print(f"API token      {token_file} (admin; set PIPELINE_API_TOKENS for tenant tokens)")
        console.print(f"dashboard      http://127.0.0.1:{settings.api_port}/dashboard/#token={token}",
                      soft_wrap=True)
    console.print(f"results/stats  http://127.0.0.1:{settings.results_port}/v1/stats (with the API token)")
    console.print("deliveries     to 127.0.0.0/8 over http allowed for local trying "
                  "(PIPELINE_ALLOWED_NETWORKS, PIPELINE_ALLOW_HTTP)")
    console.print("\nTry it, in another terminal (after `. .venv/bin/activate`):")
    for command in (
        f"pipeline receiver --secret {DEMO_SECRET}",
        f"pipeline subscriptions create --name demo --url http://127.0.0.1:{settings.receiver_port}/hook "
        f"-e 'user.*' --secret {DEMO_SECRET}",
        "pipeline publish --type user.created --key user-1 --data '{\"name\": \"Ada\"}'",
        "pipeline stats",
    ):
        console.print(f"  {command}", soft_wrap=True, markup=False, highlight=False)
    console.print("\nCtrl-C stops everything; the data stays for the next run.")
    console.rule()


@kafka.command()
def start() -> None:
    """Start the broker (or reuse one that answers) and create the pipeline's topics."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    KafkaBroker(settings).start()
    ensure_core_topics(settings)


@kafka.command()
def stop() -> None:
    """Stop the broker this project started."""
    KafkaBroker(Settings()).stop()


@kafka.command()
def status() -> None:
    settings = Settings()
    up = broker_answers(settings.kafka_bootstrap_servers)
    console.print(f"Kafka at {settings.kafka_bootstrap_servers}: {'up' if up else 'down'}")
    raise typer.Exit(0 if up else 1)
