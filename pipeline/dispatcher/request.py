"""What goes on the wire for one delivery: the body and the Standard Webhooks headers."""

from __future__ import annotations

import base64
import json

from pipeline import __version__
from pipeline.models import Event
from pipeline.subscriptions.model import Subscription
from pipeline.signing import webhook_headers

USER_AGENT = f"webhook-pipeline/{__version__}"


def envelope_body(event: Event) -> bytes:
    """The envelope as JSON; JSON data is spliced in as published, other data goes as base64."""
    head = {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "tenant": event.tenant,
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "ordering_key": event.ordering_key,
    }
    if event.content_type == "application/json":
        prefix = json.dumps(head, separators=(",", ":"))[:-1].encode()
        return prefix + b',"data":' + event.data + b"}"
    head["content_type"] = event.content_type
    head["data_base64"] = base64.b64encode(event.data).decode()
    return json.dumps(head, separators=(",", ":")).encode()


def request_headers(subscription: Subscription, event: Event, body: bytes, timestamp: int) -> dict[str, str]:
    """webhook-id is the event id, so it stays the same on every retry and receivers can dedupe."""
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    headers.update(webhook_headers(subscription.signing_secrets(), event.id, timestamp, body))
    return headers
