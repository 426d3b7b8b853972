"""`pipeline kafka start|stop|status|console-producer|console-consumer`: the local broker and Kafka's own tools."""

from __future__ import annotations

import logging

import typer

from pipeline.cli.output import console

kafka = typer.Typer(help="The local Kafka broker (a real one, fetched from Maven Central once), and Kafka's "
                         "console tools.", no_args_is_help=True)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def register(app: typer.Typer) -> None:
    app.add_typer(kafka, name="kafka")


@kafka.command()
def start() -> None:
    """Start the broker (or reuse one that answers) and create the pipeline's topics."""
    from pipeline.config import Settings
    from pipeline.devstack.kafka_broker import KafkaBroker
    from pipeline.kafka.admin import ensure_core_topics

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    KafkaBroker(settings).start()
    ensure_core_topics(settings)


@kafka.command()
def stop() -> None:
    """Stop the broker this project started."""
    from pipeline.config import Settings
    from pipeline.devstack.kafka_broker import KafkaBroker

    KafkaBroker(Settings()).stop()


@kafka.command()
def status() -> None:
    """Say whether a broker answers at KAFKA_BOOTSTRAP_SERVERS (exit 1 when none does)."""
    from pipeline.config import Settings
    from pipeline.kafka.admin import broker_answers

    settings = Settings()
    up = broker_answers(settings.kafka_bootstrap_servers)
    console.print(f"Kafka at {settings.kafka_bootstrap_servers}: {'up' if up else 'down'}")
    raise typer.Exit(0 if up else 1)


@kafka.command("console-producer", context_settings=PASS_THROUGH)
def console_producer(ctx: typer.Context) -> None:
    """Kafka's kafka-console-producer: every argument goes to it (--help lists them); --bootstrap-server is
    filled in. E.g. `pipeline kafka console-producer --topic whk.events`."""
    _run_tool("console-producer", ctx.args)


@kafka.command("console-consumer", context_settings=PASS_THROUGH)
def console_consumer(ctx: typer.Context) -> None:
    """Kafka's kafka-console-consumer: every argument goes to it (--help lists them); --bootstrap-server is
    filled in. E.g. `pipeline kafka console-consumer --topic whk.dead-letters --from-beginning`."""
    _run_tool("console-consumer", ctx.args)


def _run_tool(tool: str, args: list[str]) -> None:
    from pipeline.config import Settings
    from pipeline.devstack.kafka_broker import KafkaBroker
    from pipeline.devstack.kafka_tools import run_tool

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise typer.Exit(run_tool(KafkaBroker(Settings()), tool, args))
