"""The `pipeline` command: one Typer app, each command group in its own module."""

from __future__ import annotations

import typer

from pipeline.cli import events, publish, receiver, replay, stack, stats, subscriptions

app = typer.Typer(help="Webhook delivery pipeline: publish events, manage subscriptions, watch deliveries.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

for module in (publish, subscriptions, events, replay, stats, receiver, stack):
    module.register(app)


if __name__ == "__main__":
    app()
