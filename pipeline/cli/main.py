"""The `pipeline` command: one Typer app, each command group in its own module.

The command modules import the pipeline's heavy parts (Kafka clients, faust, FastAPI, chdb)
inside the commands that need them, so `--help` and quick commands start in a fraction of a second.
"""

from __future__ import annotations

import typer

from pipeline.cli import events, kafka, publish, receiver, replay, stack, stats, subscriptions

app = typer.Typer(help="Webhook delivery pipeline: publish events, manage subscriptions, watch deliveries.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

for module in (publish, subscriptions, events, replay, stats, receiver, stack, kafka):
    module.register(app)


if __name__ == "__main__":
    app()
