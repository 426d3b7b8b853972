"""Tables fit the terminal: a table when it fits, a block per row when it does not; ids never cut."""

from __future__ import annotations

import pytest
from rich.console import Console

from pipeline.cli import output

SUBSCRIPTION_ID = "sub_0123456789abcdef0123456789abcdef"
URL = "https://hooks.example.com/webhooks/acme/billing?token=abc"
SUBSCRIPTIONS = (["id", "name", "url", "event types", "state"],
                 [[SUBSCRIPTION_ID, "billing sync", URL, "order.paid, invoice.*", "active"],
                  ["sub_short", "demo", "http://127.0.0.1:8700/hook", "user.*", "paused"]])
HEADERS = "content-type: application/json\nwebhook-id: evt_0123456789abcdef0123456789abcdef\nwebhook-signature: v1,abc="
LAST_ATTEMPTS = (["time", "subscription", "event type", "try", "status", "outcome", "ms", "error or response",
                  "request headers"],
                 [["2026-12-02 07:44:42Z", SUBSCRIPTION_ID, "user.deleted", 1, 204, "success", "149.5", "", HEADERS]])


@pytest.fixture
def terminal(monkeypatch):
    def of_width(width: int) -> Console:
        console = Console(width=width, record=True, color_system=None)
        monkeypatch.setattr(output, "console", console)
        return console

    return of_width


@pytest.mark.parametrize(("headings", "rows"), [SUBSCRIPTIONS, LAST_ATTEMPTS])
def test_at_80_columns_rows_become_blocks_with_whole_values(terminal, headings, rows) -> None:
    console = terminal(80)

    output.print_rows("Rows", headings, rows, lead=1)

    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    for row in rows:
        for cell in row:
            for part in str(cell).splitlines():  # each header line, each id and URL, uncut
                assert part in text


def test_a_block_names_each_value(terminal) -> None:
    console = terminal(80)

    output.print_rows(None, *SUBSCRIPTIONS)

    lines = console.export_text().splitlines()
    assert lines[0] == SUBSCRIPTION_ID
    assert lines[2] == f"  url          {URL}"


def test_a_wide_terminal_gets_the_table(terminal) -> None:
    console = terminal(200)

    output.print_rows(None, *SUBSCRIPTIONS)

    table_rows = [line for line in console.export_text().splitlines() if line.startswith("│")]
    assert [cell.strip() for cell in table_rows[0].split("│")[1:-1]] == SUBSCRIPTIONS[1][0]


def test_an_empty_value_leaves_out_its_line(terminal) -> None:
    console = terminal(80)

    output.print_rows(None, *LAST_ATTEMPTS, lead=2)

    text = console.export_text()
    assert "error or response" not in text
    assert "  request headers    content-type: application/json\n" in text


def test_no_rows_prints_the_empty_message(capsys) -> None:
    output.print_rows(None, ["id"], [], "No subscriptions.")

    assert capsys.readouterr().out == "No subscriptions.\n"
