"""What goes on the wire for one delivery: method, URL, headers (signature, auth, custom), body.

Without a template the event envelope is sent as it is; with one, the template's rendering.
A batching subscription always receives a JSON array, even of one event.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from pipeline import __version__, json_values
from pipeline.errors import InvalidInput
from pipeline.models import Event, is_json
from pipeline.signing import body_signature, webhook_headers
from pipeline.subscriptions.model import Subscription

USER_AGENT = f"webhook-pipeline/{__version__}"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# What JSON data spliced into a body as published must not hold: NaN, Infinity, or a number past a
# double's range (1e309). The router refuses such events; only a task routed before it did can
# hold one, so a cheap search finds the data worth parsing.
_MAYBE_NOT_FINITE = re.compile(rb"NaN|Infinity|[0-9][eE]\+?[0-9]{3}")


@dataclass(frozen=True)
class OutgoingRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class RequestTooLarge(InvalidInput):
    pass


def build_request(subscription: Subscription, events: Sequence[Event], message_id: str,
                  timestamp: int, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> OutgoingRequest:
    url, body, content_type = _url_and_body(subscription, events)
    if len(body) > max_body_bytes:
        raise RequestTooLarge("body", f"{len(body)} bytes is over the limit of {max_body_bytes}")
    headers = {"user-agent": USER_AGENT, "webhook-id": message_id}
    if body or subscription.method != "GET":
        headers["content-type"] = content_type
    headers.update(_signature_headers(subscription, message_id, timestamp, body))
    headers.update(_auth_headers(subscription))
    for name, value in subscription.headers.items():
        headers.pop(name.lower(), None)
        if value is not None:  # null removes a default header, such as content-type
            headers[name.lower()] = value
    return OutgoingRequest(subscription.method, url, headers, body)


def _url_and_body(subscription: Subscription, events: Sequence[Event]) -> tuple[str, bytes, str]:
    if subscription.method == "GET":
        return _with_query(subscription.url, _payload(subscription, events)), b"", ""
    if _is_plain_envelope(subscription):
        return subscription.url, envelope_body(_checked(events[0])), "application/json"
    if subscription.body_format == "raw" and subscription.template is None and subscription.batch_max_events == 1:
        return subscription.url, _checked(events[0]).data, events[0].content_type
    from pipeline.dispatcher.body_formats import encode_payload

    body, content_type = encode_payload(subscription.body_format, _payload(subscription, events),
                                        rpc_method=subscription.rpc_method, rpc_id=events[0].id)
    return subscription.url, body, content_type


def _checked(event: Event) -> Event:
    """The event, once its JSON data is known to hold only JSON numbers; InvalidInput otherwise."""
    if is_json(event.content_type) and _MAYBE_NOT_FINITE.search(event.data):
        json_values.loads(event.data, ("data",))
    return event


def _is_plain_envelope(subscription: Subscription) -> bool:
    """The common case, kept on a fast path: one event, no template, JSON."""
    return (subscription.body_format == "json" and subscription.template is None
            and subscription.batch_max_events == 1)


def _payload(subscription: Subscription, events: Sequence[Event]) -> Any:
    rendered = [_render(subscription, event) for event in events]
    return rendered if subscription.batch_max_events > 1 else rendered[0]


def _render(subscription: Subscription, event: Event) -> Any:
    from pipeline.documents import event_document

    document = event_document(event)
    if subscription.template is None:
        return envelope_value(event, document.get("data"))
    return _template(json.dumps(subscription.template, sort_keys=True)).render(document)


@lru_cache(maxsize=1024)
def _template(template_json: str) -> Any:
    from pipeline.dispatcher.template import compile_template

    return compile_template(json.loads(template_json))


def _with_query(url: str, payload: Any) -> str:
    from pipeline.dispatcher.body_formats import query_pairs

    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(query_pairs(payload))]))
    return urlunsplit(parts._replace(query=query))


def _signature_headers(subscription: Subscription, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    secrets = subscription.signing_secrets()
    if subscription.signing == "standard":
        return webhook_headers(secrets, message_id, timestamp, body)
    # Plain hex HMAC-SHA256 of the body, as the seed products sent; one per active secret while rotating.
    digests = [body_signature(secret, body) for secret in secrets]
    return {"x-signature": " ".join(digests), "x-signature-algo": "sha256", "webhook-timestamp": str(timestamp)}


def _auth_headers(subscription: Subscription) -> dict[str, str]:
    auth = subscription.auth
    if auth.type == "basic":
        credentials = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
        return {"authorization": f"Basic {credentials}"}
    if auth.type == "bearer":
        return {"authorization": f"Bearer {auth.token}"}
    return {}


def envelope_value(event: Event, data: Any) -> dict[str, Any]:
    value = {"id": event.id, "type": event.type, "source": event.source, "tenant": event.tenant,
             "time": event.time.isoformat().replace("+00:00", "Z"), "ordering_key": event.ordering_key}
    if is_json(event.content_type):
        return value | {"data": data}
    return value | {"content_type": event.content_type, "data_base64": base64.b64encode(event.data).decode()}


def envelope_body(event: Event) -> bytes:
    """The envelope as JSON; JSON data is spliced in as published, other data goes as base64."""
    if not is_json(event.content_type):
        return json.dumps(envelope_value(event, None), separators=(",", ":")).encode()
    head = envelope_value(event, None)
    del head["data"]
    prefix = json.dumps(head, separators=(",", ":"))[:-1].encode()
    return prefix + b',"data":' + event.data + b"}"
