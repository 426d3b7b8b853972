"""A subscription to and from its Avro record: secrets, credentials and every header value sealed
(any header may carry an API key), JSON fields as text."""

from __future__ import annotations

import json
from typing import Any

from pipeline.codec import codec
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import SecretBox
from pipeline.subscriptions.urls import moved_credentials

JSON_FIELDS = ("filter", "template")


def to_avro(subscription: Subscription, box: SecretBox) -> bytes:
    record = subscription.model_dump()
    record["secret"] = box.seal(subscription.secret)
    record["previous_secrets"] = [{"secret": box.seal(old.secret), "expires_at": old.expires_at}
                                  for old in subscription.previous_secrets]
    record["auth"] |= {"password": box.seal_optional(subscription.auth.password),
                       "token": box.seal_optional(subscription.auth.token)}
    record["headers"] = {name: box.seal_optional(value) for name, value in subscription.headers.items()}
    for field in JSON_FIELDS:
        record[field] = None if record[field] is None else json.dumps(record[field])
    return codec("subscription").encode(record)


def from_avro(payload: bytes, box: SecretBox) -> Subscription:
    record: dict[str, Any] = moved_credentials(codec("subscription").decode(payload))
    record["secret"] = box.open(record["secret"])
    record["previous_secrets"] = [old | {"secret": box.open(old["secret"])}
                                  for old in record["previous_secrets"]]
    record["auth"] |= {"password": box.open_optional(record["auth"]["password"]),
                       "token": box.open_optional(record["auth"]["token"])}
    record["headers"] = {name: box.open_optional(value) for name, value in record["headers"].items()}
    for field in JSON_FIELDS:
        record[field] = None if record[field] is None else json.loads(record[field])
    return Subscription(**record)
