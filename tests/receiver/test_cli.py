"""The line `pipeline receiver` prints for each delivery."""

from __future__ import annotations

import time

import pytest
from rich.text import Text

from pipeline.cli.receiver import describe
from pipeline.receiver import ReceivedDelivery


def delivery(body: bytes = b'{"type":"order.paid"}', signature_ok: bool | None = True,
             path: str = "/hooks/a") -> ReceivedDelivery:
    return ReceivedDelivery(path=path, method="POST", headers={"webhook-id": "msg_7"}, body=body,
                            received_at=time.mktime((2026, 1, 2, 13, 4, 5, 0, 0, -1)), signature_ok=signature_ok)


def plain(markup: str) -> str:
    return Text.from_markup(markup).plain


def test_names_time_path_id_and_event_type() -> None:
    assert plain(describe(delivery())) == "13:04:05 POST /hooks/a msg_7 order.paid signature ✓"


@pytest.mark.parametrize(("signature_ok", "shown"), [(True, "signature ✓"), (False, "signature ✗"),
                                                      (None, "signature not checked")])
def test_shows_the_signature_check(signature_ok: bool | None, shown: str) -> None:
    assert plain(describe(delivery(signature_ok=signature_ok))).endswith(shown)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"type": 5}', b'{"no_type": "x"}'])
def test_leaves_out_the_event_type_when_there_is_none(body: bytes) -> None:
    assert plain(describe(delivery(body=body))) == "13:04:05 POST /hooks/a msg_7 signature ✓"


def test_a_path_that_looks_like_markup_is_printed_as_sent() -> None:
    assert "/[red]x[/red]" in plain(describe(delivery(path="/[red]x[/red]")))
