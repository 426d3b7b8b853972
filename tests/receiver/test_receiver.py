"""The local receiver, driven from synchronous tests as the e2e suite and the benchmark use it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from pipeline.devstack.ports import free_port
from pipeline.dispatcher.request import build_request
from pipeline.models import Event, new_secret
from pipeline.receiver import Receiver
from pipeline.signing import webhook_headers
from pipeline.subscriptions.model import Subscription
from tests.polling import wait_until

BODY = b'{"type":"user.created","data":{"a":1}}'


def signed(secret: str, msg_id: str, body: bytes = BODY) -> dict[str, str]:
    return webhook_headers([secret], msg_id, int(time.time()), body)


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(secret: str) -> Iterator[Receiver]:
    running = Receiver(secret=secret)
    running.start()
    yield running
    running.stop()


def test_a_signed_post_is_recorded_with_a_good_signature(receiver: Receiver, secret: str) -> None:
    response = httpx.post(f"{receiver.base_url}/hooks/a", content=BODY, headers=signed(secret, "msg_1"))
    assert response.status_code == 204
    [delivery] = receiver.by_path("/hooks/a")
    assert (delivery.method, delivery.body, delivery.signature_ok) == ("POST", BODY, True)
    assert delivery.headers["webhook-id"] == "msg_1"  # names are lower-case whatever was sent
    assert abs(delivery.received_at - time.time()) < 60


def test_a_bad_signature_or_a_changed_body_is_recorded_as_failing(receiver: Receiver, secret: str) -> None:
    httpx.post(f"{receiver.base_url}/wrong-secret", content=BODY, headers=signed(new_secret(), "msg_2"))
    httpx.post(f"{receiver.base_url}/changed-body", content=BODY + b" ", headers=signed(secret, "msg_3"))
    httpx.post(f"{receiver.base_url}/unsigned", content=BODY)
    assert [d.signature_ok for d in receiver.deliveries] == [False, False, False]


def hex_signature(secret: str, body: bytes = BODY) -> str:
    """The hmac-sha256 scheme computed here on its own: hex HMAC-SHA256 of the body, key after whsec_."""
    return hmac.new(base64.b64decode(secret.removeprefix("whsec_")), body, hashlib.sha256).hexdigest()


def test_hmac_sha256_signatures_in_x_signature_verify_too(receiver: Receiver, secret: str) -> None:
    rotating = f"{hex_signature(new_secret())} {hex_signature(secret)}"  # old and new secret, during rotation
    for path, headers, body in [
        ("/good", {"x-signature": hex_signature(secret), "x-signature-algo": "sha256"}, BODY),
        ("/rotating", {"X-Signature": rotating}, BODY),
        ("/wrong-secret", {"x-signature": hex_signature(new_secret())}, BODY),
        ("/changed-body", {"x-signature": hex_signature(secret)}, BODY + b" "),
        ("/other-algo", {"x-signature": hex_signature(secret), "x-signature-algo": "sha1"}, BODY),
        ("/empty", {"x-signature": ""}, BODY),
    ]:
        httpx.post(f"{receiver.base_url}{path}", content=body, headers=headers)
    assert [(d.path, d.signature_ok) for d in receiver.deliveries] == [
        ("/good", True), ("/rotating", True), ("/wrong-secret", False), ("/changed-body", False),
        ("/other-algo", False), ("/empty", False)]


def test_what_the_dispatcher_signs_with_hmac_sha256_verifies_with_either_secret_while_rotating() -> None:
    subscription = Subscription(name="s", url="https://example.test/h", event_types=["*"], signing="hmac-sha256")
    rotated = subscription.rotated(timedelta(hours=1))
    request = build_request(rotated, [Event(type="user.created")], "msg_1", int(time.time()))
    assert request.headers["x-signature"].split() == [hex_signature(rotated.secret, request.body),
                                                      hex_signature(subscription.secret, request.body)]
    receiver = Receiver(secrets={"/new": rotated.secret, "/old": subscription.secret}, secret=new_secret())
    receiver.start()
    try:
        for path in ("/new", "/old", "/unknown"):
            httpx.post(f"{receiver.base_url}{path}", content=request.body, headers=request.headers)
        assert [(d.path, d.signature_ok) for d in receiver.deliveries] == [
            ("/new", True), ("/old", True), ("/unknown", False)]
    finally:
        receiver.stop()


def test_count_and_received_answer_another_client(receiver: Receiver, secret: str) -> None:
    assert httpx.get(f"{receiver.base_url}/_count").json() == {"count": 0}
    httpx.post(f"{receiver.base_url}/a", content=BODY, headers=signed(secret, "msg_1"))
    httpx.put(f"{receiver.base_url}/b", content=b"plain text")
    httpx.get(f"{receiver.base_url}/c/d?x=1")
    assert httpx.get(f"{receiver.base_url}/_count").json() == {"count": 3}
    received = httpx.get(f"{receiver.base_url}/_received").json()
    assert [(r["method"], r["path"]) for r in received] == [("POST", "/a"), ("PUT", "/b"), ("GET", "/c/d")]
    assert received[0]["body"] == BODY.decode() and received[0]["signature_ok"] is True
    assert received[0]["headers"]["webhook-id"] == "msg_1"
    only_b = httpx.get(f"{receiver.base_url}/_received", params={"path": "/b"}).json()
    assert [r["body"] for r in only_b] == ["plain text"]


def test_without_a_secret_signatures_are_not_checked() -> None:
    receiver = Receiver()
    receiver.start()
    try:
        httpx.post(f"{receiver.base_url}/x", content=BODY, headers=signed(new_secret(), "msg_1"))
        assert [d.signature_ok for d in receiver.deliveries] == [None]
    finally:
        receiver.stop()


def test_secrets_by_path_override_the_default_and_can_be_added_later() -> None:
    default, for_a, for_b = new_secret(), new_secret(), new_secret()
    receiver = Receiver(secret=default, secrets={"/a": for_a})
    receiver.start()
    try:
        receiver.set_secret("/b", for_b)
        for path, secret in [("/a", for_a), ("/a", default), ("/b", for_b), ("/other", default)]:
            httpx.post(f"{receiver.base_url}{path}", content=BODY, headers=signed(secret, "msg"))
        assert [(d.path, d.signature_ok) for d in receiver.deliveries] == [
            ("/a", True), ("/a", False), ("/b", True), ("/other", True)]
    finally:
        receiver.stop()


def test_a_malformed_secret_is_refused_before_starting() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        Receiver(secret="whsec_not base64!")


def test_a_taken_port_fails_start_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        started = time.monotonic()
        with pytest.raises(OSError):
            Receiver(port=taken.getsockname()[1]).start()
        assert time.monotonic() - started < 5


def test_stop_closes_the_port_and_can_be_called_twice(secret: str) -> None:
    receiver = Receiver(secret=secret)
    base_url = receiver.start()
    receiver.stop()
    receiver.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/_count")


def _count(base_url: str) -> int | None:
    try:
        return httpx.get(f"{base_url}/_count", timeout=2).json()["count"]
    except httpx.HTTPError:
        return None


def test_python_m_pipeline_receiver_serves_another_process(secret: str) -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.receiver", "--port", base_url.rsplit(":", 1)[1], "--secret", secret],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _count(base_url) is not None, timeout_s=30, interval_s=0.05, what="the receiver process")
        httpx.post(f"{base_url}/hooks/p", content=BODY, headers=signed(secret, "msg_p"))
        assert _count(base_url) == 1
        [delivery] = httpx.get(f"{base_url}/_received").json()
        assert (delivery["path"], delivery["signature_ok"]) == ("/hooks/p", True)
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert "receiving webhooks at" in output
    assert "/hooks/p msg_p user.created" in output and "signature ✓" in output
