"""Our signatures, checked by the independent Standard Webhooks reference library."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from pipeline.models import new_secret
from pipeline.signing import (
    body_signature,
    decode_secret,
    secret_key,
    sign,
    signature_header,
    verify,
    verify_body_signature,
    webhook_headers,
)

BODIES = [  # UTF-8 only: the reference library decodes the body before it checks it
    b"{}",
    b'{"type":"user.created","data":{"name":"Ada \xc3\xa9","emoji":"\xf0\x9f\x8e\x89"}}',
    b"not json at all",
    b"x" * 100_000,
]
SECRETS = [
    new_secret(),
    "whsec_" + base64.b64encode(b"k" * 24).decode(),  # the shortest key the spec allows
    "whsec_" + base64.b64encode(bytes(range(64))).decode(),  # the longest, with "+" and "/" in it
]
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("secret", SECRETS)
def test_reference_library_verifies_our_signature(secret: str, body: bytes) -> None:
    headers = webhook_headers([secret], "msg_1", int(time.time()), body)
    Webhook(secret).verify(body, headers, json_parse=False)  # raises when it does not verify
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers, json_parse=False)


def test_a_body_that_is_not_utf8_is_signed_as_bytes() -> None:
    secret, body = new_secret(), bytes(range(256))
    headers = webhook_headers([secret], "msg_1", 1_700_000_000, body)
    assert verify(secret, headers, body, now=1_700_000_000)
    assert not verify(secret, headers, body[:-1] + b"\x00", now=1_700_000_000)


def test_known_vector_from_the_spec() -> None:
    body = b'{"test": 2432232314}'
    assert sign(SPEC_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_prefix_is_optional_for_the_key() -> None:
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert sign(bare, "msg_1", 1, b"{}") == sign(SPEC_SECRET, "msg_1", 1, b"{}")


def test_a_malformed_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        sign("whsec_not base64!", "msg_1", 1, b"{}")


@pytest.mark.parametrize("secret", ["whsec_AAAA!", "whsec_AA AA", "whsec_AAAA\n", "whsec_AA-_"])
def test_a_secret_with_characters_outside_base64_is_refused_not_stripped(secret: str) -> None:
    # Lenient base64 would drop the stray characters and sign with the key "AAAA" stands for.
    for decode in (decode_secret, secret_key):
        with pytest.raises(ValueError, match=r"a webhook secret must be whsec_<base64>"):
            decode(secret)


def test_the_key_is_the_base64_after_the_prefix() -> None:
    key = bytes(range(24))
    assert decode_secret("whsec_" + base64.b64encode(key).decode()) == key
    assert decode_secret(base64.b64encode(key).decode()) == key
    assert secret_key("whsec_" + base64.b64encode(key).decode()) == key


def test_headers_name_the_id_and_timestamp() -> None:
    headers = webhook_headers([SPEC_SECRET], "msg_9", 1614265330, b"{}")
    assert headers["webhook-id"] == "msg_9"
    assert headers["webhook-timestamp"] == "1614265330"
    assert headers["webhook-signature"] == sign(SPEC_SECRET, "msg_9", 1614265330, b"{}")


def test_during_rotation_each_secret_alone_verifies() -> None:
    old, new = new_secret(), new_secret()
    body, now = b'{"a":1}', int(time.time())
    headers = webhook_headers([new, old], "msg_2", now, body)
    assert headers["webhook-signature"].split() == [sign(new, "msg_2", now, body), sign(old, "msg_2", now, body)]
    for secret in (old, new):
        Webhook(secret).verify(body, headers)
        assert verify(secret, headers, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_signature_header_of_no_secrets_is_empty() -> None:
    assert signature_header([], "msg_1", 1, b"{}") == ""


def test_reference_library_rejects_a_tampered_body() -> None:
    secret = new_secret()
    headers = webhook_headers([secret], "msg_3", int(time.time()), b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)


class TestVerify:
    SECRET = new_secret()
    BODY = b'{"a":1}'
    NOW = 1_700_000_000

    def headers(self, **overrides: str) -> dict[str, str]:
        return webhook_headers([self.SECRET], "msg_4", self.NOW, self.BODY) | overrides

    def test_accepts_a_good_signature_with_any_header_case(self) -> None:
        assert verify(self.SECRET, self.headers(), self.BODY, now=self.NOW)
        shouted = {name.upper(): value for name, value in self.headers().items()}
        assert verify(self.SECRET, shouted, self.BODY, now=self.NOW)

    def test_rejects_a_tampered_body(self) -> None:
        assert not verify(self.SECRET, self.headers(), b'{"a":2}', now=self.NOW)

    def test_rejects_a_wrong_secret(self) -> None:
        assert not verify(new_secret(), self.headers(), self.BODY, now=self.NOW)

    def test_rejects_a_changed_id_or_timestamp(self) -> None:
        assert not verify(self.SECRET, self.headers(**{"webhook-id": "msg_5"}), self.BODY, now=self.NOW)
        moved = self.headers(**{"webhook-timestamp": str(self.NOW + 1)})
        assert not verify(self.SECRET, moved, self.BODY, now=self.NOW)

    @pytest.mark.parametrize("skew_s", [-301, 301, -86_400])
    def test_rejects_a_timestamp_outside_tolerance(self, skew_s: int) -> None:
        assert not verify(self.SECRET, self.headers(), self.BODY, now=self.NOW + skew_s)

    @pytest.mark.parametrize("skew_s", [-300, 300])
    def test_accepts_a_timestamp_at_the_edge_of_tolerance(self, skew_s: int) -> None:
        assert verify(self.SECRET, self.headers(), self.BODY, now=self.NOW + skew_s)

    def test_tolerance_is_a_parameter(self) -> None:
        assert not verify(self.SECRET, self.headers(), self.BODY, tolerance_s=10, now=self.NOW + 11)

    def test_uses_the_clock_when_now_is_not_given(self) -> None:
        assert not verify(self.SECRET, self.headers(), self.BODY)  # NOW is in 2023

    @pytest.mark.parametrize("broken", [
        {"webhook-signature": ""},
        {"webhook-signature": "v1,é-not-ascii"},
        {"webhook-timestamp": "soon"},
    ])
    def test_rejects_malformed_headers_without_raising(self, broken: dict[str, str]) -> None:
        assert not verify(self.SECRET, self.headers(**broken), self.BODY, now=self.NOW)

    def test_rejects_missing_headers(self) -> None:
        assert not verify(self.SECRET, {"webhook-id": "msg_4"}, self.BODY, now=self.NOW)

    def test_accepts_when_any_offered_signature_matches(self) -> None:
        other = sign(new_secret(), "msg_4", self.NOW, self.BODY)
        mixed = self.headers(**{"webhook-signature": f"{other} {self.headers()['webhook-signature']}"})
        assert verify(self.SECRET, mixed, self.BODY, now=self.NOW)


def test_a_lone_surrogate_in_an_offered_signature_is_a_mismatch_not_an_error() -> None:
    # aiohttp hands over undecodable header bytes as lone surrogates, which strict UTF-8 refuses.
    headers = webhook_headers([SPEC_SECRET], "msg_1", 1_700_000_000, b"{}")
    good = headers["webhook-signature"]
    assert not verify(SPEC_SECRET, headers | {"webhook-signature": "v1,\udcff"}, b"{}", now=1_700_000_000)
    assert verify(SPEC_SECRET, headers | {"webhook-signature": f"v1,\udcff {good}"}, b"{}", now=1_700_000_000)


class TestBodySignature:
    """The `hmac-sha256` scheme: the hex HMAC of the body alone in `x-signature`."""

    SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
    BODY = b'{"a":1}'
    HEX = hmac.new(b"k" * 32, BODY, hashlib.sha256).hexdigest()

    def test_is_the_hex_hmac_sha256_of_the_body_with_the_decoded_key(self) -> None:
        assert body_signature(self.SECRET, self.BODY) == self.HEX
        assert body_signature(self.SECRET.removeprefix("whsec_"), self.BODY) == self.HEX

    def test_verifies_with_or_without_the_algorithm_header_in_any_case(self) -> None:
        assert verify_body_signature(self.SECRET, {"x-signature": self.HEX}, self.BODY)
        assert verify_body_signature(self.SECRET, {"X-Signature": self.HEX.upper(), "X-Signature-Algo": "SHA256"},
                                     self.BODY)

    def test_accepts_when_any_offered_signature_matches(self) -> None:
        other = body_signature(new_secret(), self.BODY)
        assert verify_body_signature(self.SECRET, {"x-signature": f"{other} {self.HEX}"}, self.BODY)
        assert not verify_body_signature(self.SECRET, {"x-signature": other}, self.BODY)

    @pytest.mark.parametrize("headers", [{}, {"x-signature": ""}, {"x-signature": "0" * 64},
                                         {"x-signature": "\udcff"}])
    def test_rejects_a_missing_or_garbled_signature_without_raising(self, headers: dict[str, str]) -> None:
        assert not verify_body_signature(self.SECRET, headers, self.BODY)

    @pytest.mark.parametrize("algorithm", ["sha1", "sha512", ""])
    def test_rejects_another_algorithm_even_with_a_matching_signature(self, algorithm: str) -> None:
        assert not verify_body_signature(self.SECRET, {"x-signature": self.HEX, "x-signature-algo": algorithm},
                                         self.BODY)

    def test_rejects_a_tampered_body_or_a_wrong_secret(self) -> None:
        assert not verify_body_signature(self.SECRET, {"x-signature": self.HEX}, self.BODY + b" ")
        assert not verify_body_signature(new_secret(), {"x-signature": self.HEX}, self.BODY)
