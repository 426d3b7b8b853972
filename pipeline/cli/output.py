"""Shared console, the one way the CLI reports refused input, and tables that fit the terminal.

Rows print as a table when it fits the terminal's width; when it does not, each row prints as a
block of `heading  value` lines instead, so no cell is squeezed into a narrow column and ids and
URLs stay whole, ready to copy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from pipeline.errors import PipelineError

NUMBER = re.compile(r"-|-?[0-9][0-9.]*( %)?")  # a count, a latency, a rate, or "-" for none
UNLIMITED = 1_000_000
console = Console()
errors = Console(stderr=True)


def fail(exc: PipelineError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(code=2)


def print_rows(title: str | None, headings: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "",
               lead: int = 1) -> None:
    """A table, or when it would not fit, a block per row headed by its first `lead` cells."""
    if not rows:
        if empty:
            typer.echo(empty)
        return
    table = rows_table(title, headings, rows)
    if natural_width(table) <= console.width:
        console.print(table)
    else:
        _print_blocks(title, headings, rows, lead)


def natural_width(table: Table) -> int:
    """How wide the table is with no cell wrapped (console.measure would clamp it to the terminal)."""
    return Measurement.get(console, console.options.update(max_width=UNLIMITED), table).maximum


def rows_table(title: str | None, headings: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title)
    for index, heading in enumerate(headings):
        numeric = all(_is_number(row[index]) for row in rows)
        table.add_column(heading, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    return table


def _is_number(cell: Any) -> bool:
    return isinstance(cell, (int, float)) or (isinstance(cell, str) and NUMBER.fullmatch(cell) is not None)


def _print_blocks(title: str | None, headings: Sequence[str], rows: Sequence[Sequence[Any]], lead: int) -> None:
    if title:
        console.print(f"[bold]{escape(title)}[/bold]")
    width = max((len(heading) for heading in headings[lead:]), default=0)
    for number, row in enumerate(rows):
        if title or number:
            console.print()
        console.print("[bold]" + escape("  ".join(str(cell) for cell in row[:lead])) + "[/bold]", soft_wrap=True)
        for heading, cell in zip(headings[lead:], row[lead:], strict=True):
            # soft_wrap: a long value stays one line for the terminal to wrap, so it copies whole.
            for index, line in enumerate(str(cell).splitlines()):  # an empty value prints nothing
                label = heading if index == 0 else ""
                console.print(f"  {label:<{width}}  {line}", soft_wrap=True, markup=False, highlight=False)
