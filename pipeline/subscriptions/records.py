"""How one record of the compacted subscriptions topic changes the table."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from pipeline.errors import CodecError, ServiceError
from pipeline.models import invalid_input
from pipeline.subscriptions.avro import from_avro
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import SecretBox

log = logging.getLogger(__name__)


def apply_record(table: dict[str, Subscription], key: bytes | None, value: bytes | None, box: SecretBox) -> None:
    """An Avro value puts the subscription; a tombstone (no value) deletes it."""
    if key is None:
        log.warning("skipping a subscriptions record without a key")
        return
    subscription_id = key.decode()
    if value is None:
        table.pop(subscription_id, None)
        return
    try:
        table[subscription_id] = from_avro(value, box)
    except ValidationError as exc:  # its text would quote the values, secrets included
        log.error("skipping an unreadable subscription %s: %s", subscription_id, invalid_input(exc))
    except (CodecError, ServiceError, ValueError) as exc:
        log.error("skipping an unreadable subscription %s: %s", subscription_id, exc)
