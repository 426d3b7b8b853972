"""How one record of the compacted subscriptions topic changes the table.

Every process reads the topic in the same order and applies the same rule, so all agree: a
record applies only on top of the version it was based on (`based_on`; 0 when it was made as a
new subscription, None for records written before versions, which always apply). Of two changes
made from the same version, the one written first wins everywhere and the other is ignored: that
is the compare-and-set of every write, decided by the log itself.

A compacted topic keeps only the last record of each key, so an ignored record must not stay the
last one of a subscription that exists: whoever wrote it restates the current version at once
(see SubscriptionCommands). A tombstone deletes whatever is there.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from pipeline.errors import CodecError, ServiceError
from pipeline.models import invalid_input
from pipeline.subscriptions.avro import from_avro
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import SecretBox

log = logging.getLogger(__name__)


def apply_record(table: dict[str, Subscription], key: bytes | None, value: bytes | None, box: SecretBox) -> bool:
    """An Avro value puts the subscription, if based on the version held; a tombstone deletes it.
    True when the record changed the table (or deleted), False when it was ignored or unreadable."""
    if key is None:
        log.warning("skipping a subscriptions record without a key")
        return False
    subscription_id = key.decode()
    if value is None:
        table.pop(subscription_id, None)
        return True
    try:
        incoming = from_avro(value, box)
    except ValidationError as exc:  # its text would quote the values, secrets included
        log.error("skipping an unreadable subscription %s: %s", subscription_id, invalid_input(exc))
        return False
    except (CodecError, ServiceError, ValueError) as exc:
        log.error("skipping an unreadable subscription %s: %s", subscription_id, exc)
        return False
    held = table.get(subscription_id)
    if not applies(incoming, held):
        log.info("ignoring a change of subscription %s made from version %s: version %s is the current one",
                 subscription_id, incoming.based_on, held.version if held else "none (deleted)")
        return False
    table[subscription_id] = incoming
    return True


def applies(incoming: Subscription, held: Subscription | None) -> bool:
    """Whether a record applies on top of what the table holds."""
    return incoming.based_on is None or incoming.based_on == (0 if held is None else held.version)
