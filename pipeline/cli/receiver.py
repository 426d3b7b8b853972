"""`pipeline receiver`: a local endpoint that prints each delivery and whether its signature verifies."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape

from pipeline.cli.output import console

if TYPE_CHECKING:
    from pipeline.receiver import ReceivedDelivery, Receiver

BODY_PREVIEW_BYTES = 500
SIGNATURE_MARKUP = {True: "[green]signature ✓[/green]", False: "[red]signature ✗[/red]",
                    None: "[dim]signature not checked[/dim]"}


def register(app: typer.Typer) -> None:
    app.command()(receiver)


def receiver(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: Optional[int] = typer.Option(None, help="Port (0 picks a free one).",
                                       show_default="PIPELINE_RECEIVER_PORT, else 8700"),
    secret: Optional[str] = typer.Option(None, help="whsec_... secret to verify signatures with."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing per delivery (for benchmarks)."),
    hang: Optional[str] = typer.Option(None, "--hang", help="Never answer requests under this path prefix "
                                       "(plays a hanging endpoint, for benchmarks)."),
) -> None:
    """Receive webhooks on any path, answer 204, and print each one."""
    from pipeline import eventloop
    from pipeline.config import Settings
    from pipeline.receiver import Receiver

    try:
        server = Receiver(host=host, port=Settings().receiver_port if port is None else port, secret=secret,
                          on_delivery=None if quiet else _print_delivery,
                          respond=_hanging_under(hang) if hang else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--secret") from None
    try:
        eventloop.run(_serve_forever(server))
    except KeyboardInterrupt:
        console.print(f"stopped after {server.count} deliveries")


def _hanging_under(prefix: str):
    async def respond(delivery: ReceivedDelivery) -> int:
        if delivery.path.startswith(prefix):
            await asyncio.Event().wait()  # until the sender gives up
        return 204

    return respond


async def _serve_forever(server: Receiver) -> None:
    base_url = await server.serve()
    console.print(f"receiving webhooks at {base_url}/<any path>; GET /_received, /_count; Ctrl-C stops")
    try:
        await asyncio.Event().wait()
    finally:
        await server.shutdown()


def describe(delivery: ReceivedDelivery) -> str:
    """One line of rich markup: time, method, path, webhook-id, event type, signature check."""
    stamp = time.strftime("%H:%M:%S", time.localtime(delivery.received_at))
    fields = [stamp, delivery.method, delivery.path, delivery.headers.get("webhook-id", "-"),
              _event_type(delivery.body)]
    return " ".join(escape(field) for field in fields if field) + " " + SIGNATURE_MARKUP[delivery.signature_ok]


def _event_type(body: bytes) -> str:
    try:
        event_type = json.loads(body).get("type")
    except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
        return ""
    return event_type if isinstance(event_type, str) else ""


def _print_delivery(delivery: ReceivedDelivery) -> None:
    console.print(describe(delivery))
    preview = delivery.body[:BODY_PREVIEW_BYTES].decode("utf-8", "replace")
    console.print(preview, markup=False, highlight=False, style="dim")
