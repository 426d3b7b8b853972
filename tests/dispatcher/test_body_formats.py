import json
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import pytest

from pipeline.dispatcher.body_formats import encode_payload, query_pairs, validate_header
from pipeline.errors import InvalidInput

PAYLOAD = {"user": "ada", "n": 7}


def form_fields(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)


def refusal(call: Any, field: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        call()
    assert caught.value.field == field
    return caught.value


# -- json --------------------------------------------------------------------------------------

def test_json_is_compact_with_its_content_type() -> None:
    body, content_type = encode_payload("json", {"a": [1, 2], "b": None, "c": "Zürich"})
    assert content_type == "application/json"
    assert body == b'{"a":[1,2],"b":null,"c":"Z\\u00fcrich"}'
    assert json.loads(body) == {"a": [1, 2], "b": None, "c": "Zürich"}


def test_json_keeps_arrays_and_scalars() -> None:
    assert encode_payload("json", [{"n": 1}, {"n": 2}])[0] == b'[{"n":1},{"n":2}]'
    assert encode_payload("json", "text")[0] == b'"text"'
    assert encode_payload("json", {"s": "\ud800"})[0] == b'{"s":"\\ud800"}'  # still encodes


@pytest.mark.parametrize("fmt", ["json", "json-rpc"])
def test_nan_and_infinity_are_never_sent_as_json(fmt: str) -> None:
    for number in (float("nan"), float("inf"), float("-inf")):
        error = refusal(lambda: encode_payload(fmt, {"items": [{"price": number}]}, rpc_method="m"),
                        "body.params.items.0.price" if fmt == "json-rpc" else "body.items.0.price")
        assert "not a JSON number" in error.problem


# -- form and query ----------------------------------------------------------------------------

def test_form_is_urlencoded() -> None:
    body, content_type = encode_payload("form", {"user": "ada lovelace", "n": 7, "ok": True, "none": None, "amp": "a&b=c"})
    assert content_type == "application/x-www-form-urlencoded"
    assert form_fields(body) == [("user", "ada lovelace"), ("n", "7"), ("ok", "true"), ("none", ""), ("amp", "a&b=c")]
    assert b"a%26b%3Dc" in body and b"ada+lovelace" in body


def test_nested_objects_flatten_with_brackets() -> None:
    assert query_pairs({"user": {"name": "ada", "address": {"city": "London"}}, "n": 1.5}) == [
        ("user[name]", "ada"), ("user[address][city]", "London"), ("n", "1.5")]


def test_arrays_of_scalars_repeat_empty_brackets() -> None:
    assert query_pairs({"tags": ["a", "b"], "ids": [1, 2]}) == [("tags[]", "a"), ("tags[]", "b"), ("ids[]", "1"), ("ids[]", "2")]


def test_arrays_holding_containers_use_indexes() -> None:
    assert query_pairs({"items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}], "m": [[1, 2], [3]]}) == [
        ("items[0][sku]", "A"), ("items[0][qty]", "2"), ("items[1][sku]", "B"), ("items[1][qty]", "1"),
        ("m[0][]", "1"), ("m[0][]", "2"), ("m[1][]", "3")]
    assert query_pairs({"mixed": [1, {"a": 2}]}) == [("mixed[0]", "1"), ("mixed[1][a]", "2")]


def test_a_top_level_array_uses_indexes_as_names() -> None:
    assert query_pairs([{"id": "e1"}, {"id": "e2"}]) == [("0[id]", "e1"), ("1[id]", "e2")]
    assert query_pairs(["x", "y"]) == [("0", "x"), ("1", "y")]


def test_empty_containers_send_nothing() -> None:
    assert query_pairs({"a": {}, "b": [], "c": 1}) == [("c", "1")]
    assert query_pairs({}) == [] and encode_payload("form", {})[0] == b""


def test_form_brackets_and_unicode_are_percent_encoded() -> None:
    body, _ = encode_payload("form", {"user": {"city": "Zürich"}, "s": "\ud800"})
    assert body == b"user%5Bcity%5D=Z%C3%BCrich&s=%3F"
    assert [unquote_plus(part) for part in body.decode().split("&")] == ["user[city]=Zürich", "s=?"]


def test_form_and_query_refuse_a_scalar_payload() -> None:
    for payload in ("user=ada", 7, None, True):
        assert "need an object or an array" in refusal(lambda: query_pairs(payload), "template").problem
    refusal(lambda: encode_payload("form", "x"), "template")


# -- raw ---------------------------------------------------------------------------------------

def test_raw_sends_text_as_utf8() -> None:
    assert encode_payload("raw", "user=ada;n=7") == (b"user=ada;n=7", "text/plain; charset=utf-8")
    assert encode_payload("raw", "Zürich")[0] == "Zürich".encode()
    assert encode_payload("raw", "a\ud800b")[0] == b"a?b"


def test_raw_sends_bytes_as_they_are() -> None:
    assert encode_payload("raw", b"\x00\xff") == (b"\x00\xff", "application/octet-stream")


def test_raw_sends_other_values_as_json() -> None:
    assert encode_payload("raw", {"a": 1}) == (b'{"a":1}', "application/json")
    assert encode_payload("raw", ["x", "y"]) == (b'["x","y"]', "application/json")
    assert encode_payload("raw", 7) == (b"7", "application/json")


# -- json-rpc ----------------------------------------------------------------------------------

def test_json_rpc_wraps_the_payload_as_params() -> None:
    body, content_type = encode_payload("json-rpc", {"user": "ada"}, rpc_method="user.sync", rpc_id="evt_1")
    assert content_type == "application/json"
    assert json.loads(body) == {"jsonrpc": "2.0", "method": "user.sync", "params": {"user": "ada"}, "id": "evt_1"}
    assert body.startswith(b'{"jsonrpc":"2.0","method":"user.sync"')


def test_json_rpc_params_are_always_structured() -> None:
    assert json.loads(encode_payload("json-rpc", [1, 2], rpc_method="m", rpc_id="1")[0])["params"] == [1, 2]
    assert json.loads(encode_payload("json-rpc", "text", rpc_method="m", rpc_id="1")[0])["params"] == ["text"]
    assert json.loads(encode_payload("json-rpc", None, rpc_method="m", rpc_id="1")[0])["params"] == [None]


def test_json_rpc_without_an_id_is_a_notification() -> None:
    assert "id" not in json.loads(encode_payload("json-rpc", {}, rpc_method="m")[0])


def test_json_rpc_needs_a_method() -> None:
    for method in (None, ""):
        error = refusal(lambda: encode_payload("json-rpc", {}, rpc_method=method, rpc_id="1"), "rpc_method")
        assert error.problem == "is required when body_format is json-rpc"


def test_an_unknown_format_is_refused() -> None:
    error = refusal(lambda: encode_payload("xml", {}), "body_format")
    assert error.problem == "unknown format 'xml'; use one of json, form, raw, json-rpc"


# -- headers -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    ("X-Team", "core"), ("x-api-key", "k3y=="), ("Content-Type", "application/xml"), ("Authorization", "Token abc"),
    ("user-agent", ""), ("x!#$%&'*+-.^_`|~1", "v"), ("X-Tabbed", "a\tb"), ("X-Quotes", '"quoted" ~ {}'),
])
def test_valid_headers_pass(name: str, value: str) -> None:
    validate_header(name, value)


@pytest.mark.parametrize("name", ["", "X Team", "x-team:", "x(team)", "x/team", "x\nteam", "x@team", "zürich", "x\"y"])
def test_names_must_be_tokens(name: str) -> None:
    error = refusal(lambda: validate_header(name, "v"), "headers")
    assert error.problem == f"{name!r} is not a valid header name (an RFC 7230 token)"


@pytest.mark.parametrize(("value", "described"), [
    ("a\r\nX-Evil: 1", "CR"), ("a\nb", "LF"), ("a\rb", "CR"), ("a\0b", "NUL"),
    ("a\x7fb", "the character U+007F"), ("a\x1bb", "the character U+001B"), ("Zürich", "the character U+00FC"),
])
def test_values_cannot_hold_control_or_non_ascii_characters(value: str, described: str) -> None:
    error = refusal(lambda: validate_header("X-Team", value), "headers")
    assert error.problem.startswith(f"the value of 'X-Team' contains {described};")
    assert "never CR, LF or NUL" in error.problem


@pytest.mark.parametrize("name", [
    "Host", "content-length", "Transfer-Encoding", "CONNECTION", "keep-alive", "upgrade", "te", "trailer",
    "webhook-id", "Webhook-Signature", "webhook-timestamp", "webhook-anything", "x-signature", "X-Signature-Algo",
])
def test_reserved_headers_are_refused(name: str) -> None:
    error = refusal(lambda: validate_header(name, "v"), "headers")
    assert error.problem == f"{name!r} is set by the pipeline and cannot be changed"


def test_near_misses_of_reserved_names_are_allowed() -> None:
    for name in ("x-host", "webhook", "x-webhook-id", "content-length-hint", "x-signature-v2"):
        validate_header(name, "v")


def test_subscriptions_refuse_bad_headers_through_the_same_check() -> None:
    from pipeline.subscriptions.model import Subscription

    fields = {"name": "s", "url": "https://example.test/h", "event_types": ["*"]}
    with pytest.raises(InvalidInput) as caught:
        Subscription(**fields, headers={"x-team": "a\r\nb"})
    assert caught.value.field == "headers"
    assert Subscription(**fields, headers={"x-team": "core", "content-type": None}).headers["x-team"] == "core"
