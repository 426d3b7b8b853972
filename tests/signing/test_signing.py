"""Our signatures, checked by the independent Standard Webhooks reference library."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from pipeline.models import new_secret
from pipeline.signing import sign, verify, webhook_headers

BODIES = [b"{}", b'{"type":"user.created","data":{"name":"Ada \xc3\xa9"}}', b'{"pad":"' + b"x" * 100_000 + b'"}']  # the reference library parses bodies as JSON


@pytest.mark.parametrize("body", BODIES)
def test_reference_library_verifies_our_signature(body: bytes) -> None:
    secret = new_secret()
    headers = webhook_headers([secret], "msg_1", int(time.time()), body)
    Webhook(secret).verify(body, headers)


def test_known_vector_from_the_spec() -> None:
    # The example of the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_during_rotation_each_secret_alone_verifies() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"a":1}'
    headers = webhook_headers([new, old], "msg_2", int(time.time()), body)
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


def test_reference_library_rejects_a_tampered_body() -> None:
    secret = new_secret()
    headers = webhook_headers([secret], "msg_3", int(time.time()), b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)


def test_our_verify_rejects_tampering_wrong_secret_and_stale_timestamps() -> None:
    secret, body, now = new_secret(), b"{}", 1_700_000_000
    headers = webhook_headers([secret], "msg_4", now, body)
    assert verify(secret, headers, body, now=now)
    assert not verify(secret, headers, b"{ }", now=now)
    assert not verify(new_secret(), headers, body, now=now)
    assert not verify(secret, headers, body, now=now + 301)
    assert not verify(secret, {"webhook-id": "x"}, body, now=now)
