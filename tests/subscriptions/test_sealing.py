"""What the subscriptions topic holds: every header value sealed, records written before still read,
and an unreadable record logged without the values it holds."""

from __future__ import annotations

import logging

from cryptography.fernet import Fernet

from pipeline.subscriptions.avro import from_avro, to_avro
from pipeline.subscriptions.model import EndpointAuth, Subscription
from pipeline.subscriptions.records import apply_record
from pipeline.subscriptions.secretbox import SEALED_PREFIX, SecretBox

BOX = SecretBox(Fernet.generate_key())
HEADERS = {"x-api-key": "k3y-plaintext", "X-Team": "billing-plaintext", "content-type": None}


def test_every_header_value_is_sealed_and_read_back() -> None:
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"], headers=HEADERS)
    stored = to_avro(subscription, BOX)
    assert b"k3y-plaintext" not in stored and b"billing-plaintext" not in stored
    assert stored.count(SEALED_PREFIX.encode()) == 3  # the secret and the two header values; null stays null
    assert from_avro(stored, BOX).headers == HEADERS


def test_header_values_written_before_sealing_still_read() -> None:
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"], headers=HEADERS)
    unsealed = SecretBox(Fernet.generate_key())
    unsealed.seal_optional = lambda value: value  # what records held before header values were sealed
    unsealed.seal = BOX.seal
    assert from_avro(to_avro(subscription, unsealed), BOX).headers == HEADERS


def test_an_unreadable_record_is_logged_without_its_values(caplog) -> None:
    broken = Subscription.model_construct(**(dict(Subscription(name="s", url="https://example.test/h",
                                                               event_types=["*"], headers=HEADERS))
                                             | {"auth": EndpointAuth.model_construct(  # basic auth needs a password
                                                 type="basic", username="ada", password=None,
                                                 token="t0ken-plaintext")}))
    table: dict[str, Subscription] = {}
    with caplog.at_level(logging.ERROR):
        apply_record(table, broken.id.encode(), to_avro(broken, BOX), BOX)
    assert table == {} and "skipping an unreadable subscription" in caplog.text
    assert "t0ken-plaintext" not in caplog.text and "k3y-plaintext" not in caplog.text
