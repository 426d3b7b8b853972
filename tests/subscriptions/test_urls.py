"""Endpoint URLs: credentials and ambiguous numeric hosts are refused at creation, naming `url`."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from pipeline.errors import InvalidInput
from pipeline.models import validated
from pipeline.subscriptions.avro import from_avro, to_avro
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.secretbox import SecretBox

BOX = SecretBox(Fernet.generate_key())


def refusal(url: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validated(Subscription, name="s", url=url, event_types=["*"])
    return caught.value


@pytest.mark.parametrize("url", [
    "https://ada:pa55-w0rd@example.com/hook",
    "https://ada@example.com/hook",
    "https://:pa55-w0rd@example.com/hook",
])
def test_credentials_in_the_url_are_refused_without_repeating_them(url: str) -> None:
    refused = refusal(url)
    assert refused.field == "url" and "user:password@" in refused.problem and "auth" in refused.problem
    assert "pa55-w0rd" not in str(refused) and "ada" not in str(refused)


@pytest.mark.parametrize("url", [
    "http://2130706433/hook",       # 127.0.0.1 as one integer
    "http://0x7f000001/hook",       # ... in hex
    "http://0177.0.0.1/hook",       # ... with an octal part
    "http://127.1/hook",            # ... shortened
    "http://0x7f.0.0.1/hook",
    "http://127.0.0.01/hook",       # a leading zero reads as octal to some parsers
    "http://example.0x10/hook",
    "http://2130706433./hook",
])
def test_numeric_hosts_other_than_dotted_quads_are_refused_at_creation(url: str) -> None:
    refused = refusal(url)
    assert refused.field == "url" and "not a dotted-quad IPv4 address" in refused.problem


@pytest.mark.parametrize("url", ["http://ex%41mple.com/", "http://exa mple.com/", "https://[::1/", "https://h:99999/"])
def test_other_malformed_hosts_name_the_url(url: str) -> None:
    assert refusal(url).field == "url"


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/a?b=c", "https://192.0.2.10:8443/", "https://[2001:db8::1]/hook",
    "https://under_score.example/", "https://bücher.example/", "http://127.0.0.1:8700/hook",
    "https://1password.example/",
    "https://169.254.169.254./",  # a dotted quad: the SSRF guard refuses it where it connects
])
def test_ordinary_urls_are_accepted(url: str) -> None:
    assert validated(Subscription, name="s", url=url, event_types=["*"]).url == url


def test_a_stored_url_with_credentials_is_read_as_basic_auth() -> None:
    """Accepted before they were refused: moved to auth (as they were sent), so nothing is lost."""
    valid = Subscription(name="s", url="https://example.com/hook", event_types=["*"])
    legacy = Subscription.model_construct(**(dict(valid) | {"url": "https://ada:p%40ss@example.com:8443/hook"}))
    read = from_avro(to_avro(legacy, BOX), BOX)
    assert read.url == "https://example.com:8443/hook"
    assert (read.auth.type, read.auth.username, read.auth.password) == ("basic", "ada", "p@ss")
    with_auth = legacy.model_copy(update={"auth": valid.auth.model_copy(update={"type": "bearer", "token": "t"})})
    read = from_avro(to_avro(with_auth, BOX), BOX)
    assert (read.url, read.auth.type, read.auth.token) == ("https://example.com:8443/hook", "bearer", "t")
