"""Shared console and the one way the CLI reports refused input."""

from __future__ import annotations

import typer
from rich.console import Console

from pipeline.errors import PipelineError

console = Console()
errors = Console(stderr=True)


def fail(exc: PipelineError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)
