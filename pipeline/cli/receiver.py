"""`pipeline receiver`: a local endpoint that prints each delivery and whether its signature verifies."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Optional

import typer

from pipeline.cli.output import console
from pipeline.config import Settings
from pipeline.receiver import ReceivedDelivery, Receiver


def register(app: typer.Typer) -> None:
    app.command()(receiver)


def receiver(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: Optional[int] = typer.Option(None, help="Port; PIPELINE_RECEIVER_PORT or 8700 by default."),
    secret: Optional[str] = typer.Option(None, help="whsec_... secret to verify signatures with."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing per delivery (for benchmarks)."),
) -> None:
    """Receive webhooks locally and print them."""
    server = Receiver(host=host, port=port or Settings().receiver_port, secret=secret,
                      on_delivery=None if quiet else _print_delivery)
    asyncio.run(_serve_forever(server))


async def _serve_forever(server: Receiver) -> None:
    base_url = await server.serve()
    console.print(f"receiving webhooks at {base_url}/<any path>; Ctrl-C stops")
    await asyncio.Event().wait()


def _print_delivery(delivery: ReceivedDelivery) -> None:
    signature = {True: "[green]signature ✓[/green]", False: "[red]signature ✗[/red]", None: "signature not checked"}
    try:
        event_type = json.loads(delivery.body).get("type", "")
    except (ValueError, AttributeError):
        event_type = ""
    stamp = time.strftime("%H:%M:%S", time.localtime(delivery.received_at))
    console.print(f"{stamp} {delivery.method} {delivery.path} {delivery.headers.get('webhook-id', '-')} "
                  f"{event_type} {signature[delivery.signature_ok]}")
    console.print(delivery.body.decode("utf-8", "replace")[:500], markup=False, highlight=False)
