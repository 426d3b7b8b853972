import hashlib
import time
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from pipeline.dispatcher.template import MAX_DEPTH, as_text, compile_template, to_datetime
from pipeline.errors import InvalidInput
from pipeline.models import Event
from pipeline.documents import event_document

DOCUMENT: dict[str, Any] = {
    "id": "evt_1", "type": "user.created", "source": "device-7", "tenant": "acme",
    "time": "2026-01-02T03:04:05.678000Z", "ordering_key": None,
    "data": {
        "user": {"name": "Ada", "age": 36, "admin": False}, "n": 7, "price": 9.5, "note": None,
        "tags": ["a", "b"], "items": [{"sku": "A-1"}, {"sku": "B-2"}], "city": "Zürich",
        "seen_iso": "2026-03-04T05:06:07+02:00", "seen_naive": "2026-03-04T05:06:07",
        "seen_s": 1_700_000_000, "seen_ms": 1_700_000_000_123, "seen_date": "2026-03-04",
    },
}


def render(template: Any, document: dict[str, Any] = DOCUMENT) -> Any:
    return compile_template(template).render(document)


def refusal(template: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        compile_template(template)
    assert caught.value.field == "template"
    return caught.value


# -- placeholders ------------------------------------------------------------------------------

def test_a_whole_placeholder_keeps_the_json_type() -> None:
    assert render("{{ data.n }}") == 7
    assert render("{{data.price}}") == 9.5
    assert render("{{ data.user.admin }}") is False
    assert render("{{ data.user }}") == {"name": "Ada", "age": 36, "admin": False}
    assert render("{{ data.tags }}") == ["a", "b"]
    assert render("{{ data.note }}") is None
    assert render("{{ data.items.1.sku }}") == "B-2"


def test_a_missing_whole_placeholder_is_null() -> None:
    assert render({"x": "{{ data.nothing }}"}) == {"x": None}
    assert render("{{ data.user.name.first }}") is None


def test_embedded_placeholders_interpolate_text() -> None:
    assert render("user={{ data.user.name }};n={{ data.n }}") == "user=Ada;n=7"
    assert render("{{ data.user.name }}{{ data.n }}") == "Ada7"  # two placeholders are text
    assert render(" {{ data.n }}") == " 7"  # surrounding text, even a space, makes it text
    assert render("{{ type }} from {{ source }}") == "user.created from device-7"


def test_embedded_values_become_their_json_text_and_missing_is_empty() -> None:
    assert render("[{{ data.user.admin }}]") == "[false]"
    assert render("[{{ data.price }}]") == "[9.5]"
    assert render("[{{ data.tags }}]") == '[["a","b"]]'
    assert render("[{{ data.user }}]") == '[{"name":"Ada","age":36,"admin":false}]'
    assert render("[{{ data.note }}]") == "[]"
    assert render("[{{ data.nothing }}]") == "[]"
    assert render("{{ data.city }}!") == "Zürich!"


def test_text_without_placeholders_and_a_lone_closing_brace_are_plain() -> None:
    assert render("hello }} world") == "hello }} world"
    assert render("{ single }") == "{ single }"
    assert render("") == ""


def test_constants_stay_as_they_are() -> None:
    assert render({"a": 1, "b": 2.5, "c": True, "d": None, "e": "x"}) == {"a": 1, "b": 2.5, "c": True, "d": None, "e": "x"}
    assert render(42) == 42 and render(None) is None


def test_arrays_and_nested_objects_render_recursively() -> None:
    template = {"user": {"name": "{{ data.user.name }}", "labels": ["{{ data.tags.0 }}", "fixed", "#{{ data.n }}"]},
                "list": [{"sku": "{{ data.items.0.sku }}"}, ["{{ data.n }}"]],
                "{{ not.a.key.placeholder }}": 1}
    assert render(template) == {"user": {"name": "Ada", "labels": ["a", "fixed", "#7"]},
                                "list": [{"sku": "A-1"}, [7]], "{{ not.a.key.placeholder }}": 1}


def test_a_compiled_template_keeps_its_source() -> None:
    source = {"user": "{{ data.user.name }}", "n": 1}
    assert compile_template(source).source == source


def test_renders_are_independent() -> None:
    template = compile_template({"list": ["{{ data.n }}"], "lit": {"$literal": {"a": [1]}}})
    first = template.render(DOCUMENT)
    first["list"].append(99)
    first["lit"]["a"].append(2)
    assert template.render(DOCUMENT) == {"list": [7], "lit": {"a": [1]}}


def test_templates_render_event_documents() -> None:
    event = Event(type="user.created", source="svc", data=b'{"user": "ada", "n": 7}')
    assert compile_template({"user": "{{ data.user }}", "n": "{{ data.n }}", "t": "{{ type }}"}).render(
        event_document(event)) == {"user": "ada", "n": 7, "t": "user.created"}


def test_rendering_odd_documents_never_raises() -> None:
    template = compile_template({"a": "{{ data.x.y }}", "b": "-{{ data.x.0 }}-", "h": {"$hash": "md5", "of": ["data.x"]},
                                 "d": {"$date": "data.x", "format": "%Y"}})
    for data in (None, [], "text", 3, {"x": [1]}, {"x": {"y": {"z": 1}}}, {"x": "\ud800"}, {"x": float("inf")}):
        template.render({"data": data})
    assert template.render({})["a"] is None


# -- $hash -------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_hashes_equal_hashlib_over_the_joined_text(algorithm: str) -> None:
    rendered = render({"$hash": algorithm, "of": ["data.user.name", "data.n"]})
    assert rendered == hashlib.new(algorithm, b"Ada7").hexdigest()


def test_crc32_is_eight_lower_case_hex_digits_of_zlibs_crc() -> None:
    assert render({"$hash": "crc32", "of": ["data.user.name", "data.n"]}) == f"{zlib.crc32(b'Ada7'):08x}"
    small = next(s for s in (str(i) for i in range(10_000)) if zlib.crc32(s.encode()) < 0x10000000)
    padded = render({"$hash": "crc32", "of": ["data.s"]}, {"data": {"s": small}})
    assert padded == format(zlib.crc32(small.encode()), "08x") and padded.startswith("0") and len(padded) == 8


def test_hash_separator_text_rules_and_utf8() -> None:
    assert render({"$hash": "sha256", "of": ["data.user.name", "data.n", "data.nothing", "data.note"],
                   "separator": "|"}) == hashlib.sha256(b"Ada|7||").hexdigest()
    assert render({"$hash": "md5", "of": ["data.city"]}) == hashlib.md5("Zürich".encode()).hexdigest()
    assert render({"$hash": "sha1", "of": ["data.tags", "data.user.admin"]}) == hashlib.sha1(b'["a","b"]false').hexdigest()


def test_hash_fields_sit_beside_other_fields() -> None:
    template = {algorithm: {"$hash": algorithm, "of": ["data.user.name", "data.n"]} for algorithm in ("md5", "crc32")}
    assert render(template | {"n": "{{ data.n }}"}) == {
        "md5": hashlib.md5(b"Ada7").hexdigest(), "crc32": f"{zlib.crc32(b'Ada7'):08x}", "n": 7}


# -- $date -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "expected"), [
    ("data.seen_iso", "2026-03-04 03:06:07"),  # converted to UTC
    ("data.seen_naive", "2026-03-04 05:06:07"),  # no offset: taken as UTC
    ("data.seen_date", "2026-03-04 00:00:00"),
    ("time", "2026-01-02 03:04:05"),
    ("data.seen_s", datetime.fromtimestamp(1_700_000_000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")),
    ("data.seen_ms", "2023-11-14 22:13:20"),
])
def test_dates_format_iso_strings_and_epoch_numbers_in_utc(path: str, expected: str) -> None:
    assert render({"$date": path, "format": "%Y-%m-%d %H:%M:%S"}) == expected


def test_epoch_milliseconds_keep_their_fraction() -> None:
    assert render({"$date": "data.seen_ms", "format": "%S.%f"}) == "20.123000"
    assert render({"$date": "data.seen_s", "format": "%Y"}) == "2023"


def test_values_that_are_not_dates_render_as_null() -> None:
    for value in ("yesterday", True, None, {"a": 1}, [1], 10**30):
        assert render({"$date": "data.v", "format": "%Y"}, {"data": {"v": value}}) is None
    assert render({"$date": "data.nothing", "format": "%Y"}) is None


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time zone set to New York for one test."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_dates_are_utc_whatever_the_local_time_zone(new_york: None) -> None:
    assert time.localtime(0).tm_hour == 19  # the fixture did change the local zone
    formatted = {"$date": "data.v", "format": "%Y-%m-%d %H:%M %z"}
    for value, expected in [("2026-03-04T05:06:07+02:00", "2026-03-04 03:06 +0000"),
                            ("2026-03-04T05:06:07", "2026-03-04 05:06 +0000"),
                            (1_700_000_000, "2023-11-14 22:13 +0000")]:
        assert render(formatted, {"data": {"v": value}}) == expected
        assert to_datetime(value).tzinfo == timezone.utc  # type: ignore[union-attr]


def test_to_datetime() -> None:
    assert to_datetime("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert to_datetime("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)  # naive is UTC
    assert to_datetime(0) == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert to_datetime(99_999_999_999) == datetime.fromtimestamp(99_999_999_999, timezone.utc)  # still seconds
    assert to_datetime(100_000_000_000) == datetime.fromtimestamp(100_000_000, timezone.utc)  # milliseconds
    assert to_datetime(False) is None


# -- $literal ----------------------------------------------------------------------------------

def test_literal_is_sent_untouched() -> None:
    assert render({"$literal": "{{ data.n }}"}) == "{{ data.n }}"
    assert render({"$literal": {"$hash": "md5", "x": "{{ y"}}) == {"$hash": "md5", "x": "{{ y"}
    assert render({"a": {"$literal": [1, "{{ data.n }}"]}, "b": "{{ data.n }}"}) == {"a": [1, "{{ data.n }}"], "b": 7}


def test_as_text() -> None:
    assert [as_text(v) for v in ("x", None, True, 7, 1.5, [1, "a"], {"k": None})] == [
        "x", "", "true", "7", "1.5", '[1,"a"]', '{"k":null}']


def test_as_text_keeps_non_ascii_characters_inside_json() -> None:
    assert as_text(["Zürich", {"ö": "€"}]) == '["Zürich",{"ö":"€"}]'
    assert render("{{ data.city }}/{{ data.tags }}", {"data": {"city": "Zürich", "tags": ["é"]}}) == 'Zürich/["é"]'


def test_values_that_are_not_json_are_interpolated_as_their_text() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert as_text({"at": moment}) == '{"at":"2026-01-02 03:04:05+00:00"}'
    assert render("at {{ data.at }}", {"data": {"at": [moment]}}) == 'at ["2026-01-02 03:04:05+00:00"]'


# -- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("template", "message"), [
    ("{{ data.n", "(root): unclosed {{ at character 0"),
    ({"a": ["ok", "x {{ data.n }} {{ y"]}, "/a/1: unclosed {{ at character 15"),
    ("{{ }}", "(root): placeholder: a path cannot be empty"),
    ("{{}}", "(root): placeholder: a path cannot be empty"),
    ({"a": ["x {{}}"]}, "/a/0: placeholder: a path cannot be empty"),
    ("{{ a}b }}", "(root): placeholder path 'a}b' cannot contain braces"),
    ({"a": "{{ a{b }}"}, "/a: placeholder path 'a{b' cannot contain braces"),
    ({"a": {1: "x"}}, "/a: key 1 is not a string"),
    ({"x": {"$hash": "md5", "$date": "t", "of": ["a"]}}, "/x: an object takes one special key, not $hash and $date"),
    ({"x": {"$literal": 1, "y": 2}}, "/x/y: is not an option of $literal; it takes none"),
    ({"x": {"$hash": "md5", "of": []}}, "/x/of: needs a non-empty list of paths"),
    ({"x": {"$hash": "md5", "of": ["a", "b}"]}}, "/x/of/1: hashed field path 'b}' cannot contain braces"),
    ({"x": {"$hash": "md5", "of": ["a"], "separator": None}}, "/x/separator: must be a string"),
    ({"x": [{"$date": "", "format": "%Y"}]}, "/x/0/$date: date: a path cannot be empty"),
    ({"x": {"$date": "time", "format": "%"}}, "/x/format: ends with a lone %"),
    ("{{data..n}}", "(root): placeholder: path 'data..n' has an empty segment"),
    ("{{ {{ data.n }}", "(root): placeholder path '{{ data.n' cannot contain braces"),
    ({"$foo": 1}, "/$foo: unknown special key; use $hash, $date or $literal"),
    ({"a/b": {"x~": {"$lit": 1}}}, "/a~1b/x~0/$lit: unknown special key"),
    ({"$hash": "md5", "$date": "x", "of": ["a"]}, "(root): an object takes one special key, not $hash and $date"),
    ({"$hash": "sha512", "of": ["a"]}, "/$hash: unknown hash algorithm 'sha512'; use md5, crc32, sha1, sha256"),
    ({"$hash": "md5"}, "/of: needs a non-empty list of paths"),
    ({"$hash": "md5", "of": []}, "/of: needs a non-empty list of paths"),
    ({"$hash": "md5", "of": "data.n"}, "/of: needs a non-empty list of paths"),
    ({"$hash": "md5", "of": ["a", ""]}, "/of/1: hashed field: a path cannot be empty"),
    ({"$hash": "md5", "of": ["a", 3]}, "/of/1: a hashed field path must be a string, not int"),
    ({"$hash": "md5", "of": ["a"], "separator": 1}, "/separator: must be a string"),
    ({"$hash": "md5", "of": ["a"], "salt": "x"}, "/salt: is not an option of $hash; it takes of, separator"),
    ({"$date": "time"}, "/format: needs a strftime format such as '%Y-%m-%d %H:%M:%S'"),
    ({"$date": "time", "format": ""}, "/format: needs a strftime format"),
    ({"$date": "time", "format": "%Y-%Q"}, "/format: unknown strftime directive %Q"),
    ({"$date": "time", "format": "%Q-%Y"}, "/format: unknown strftime directive %Q"),
    ({"$date": "time", "format": "%Y %Q %m"}, "/format: unknown strftime directive %Q"),
    ({"$date": "time", "format": "%Y%Q"}, "/format: unknown strftime directive %Q"),
    ({"$date": "time", "format": "%%%Q"}, "/format: unknown strftime directive %Q"),
    ({"$date": "time", "format": "%Y %"}, "/format: ends with a lone %"),
    ({"$date": "time", "format": "%-d"}, "/format: unknown strftime directive %-"),
    ({"$date": "", "format": "%Y"}, "/$date: date: a path cannot be empty"),
    ({"$date": ["time"], "format": "%Y"}, "/$date: a date path must be a string, not list"),
    ({"$date": "time", "format": "%Y", "tz": "CET"}, "/tz: is not an option of $date; it takes format"),
    ({"$literal": 1, "x": 2}, "/x: is not an option of $literal; it takes none"),
    ({"a": {1, 2}}, "/a: a set is not a JSON value"),
])
def test_bad_templates_are_refused_with_a_json_pointer(template: Any, message: str) -> None:
    assert message in str(refusal(template))


def test_percent_escapes_and_every_portable_directive_are_accepted() -> None:
    assert render({"$date": "time", "format": "100%% on %a %d %b %Y %H:%M:%S%z %Z %j %U %W %G-W%V-%u %p %I %y %m %w %f %A %B %c %x %X"})


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    template: Any = "{{ data.n }}"
    for _ in range(MAX_DEPTH - 1):
        template = [template]
    assert compile_template(template).render(DOCUMENT) is not None
    error = refusal([template])
    assert error.problem.endswith(f"nesting is deeper than {MAX_DEPTH} levels")
    assert error.problem.startswith("/0/0/")


@pytest.mark.parametrize("template, where", [
    ({"amount": float("nan")}, "/amount"),
    ([1, float("inf")], "/1"),
    ({"x": {"$literal": {"deep": [float("-inf")]}}}, "/x/$literal"),
])
def test_nan_and_infinity_are_refused_in_templates(template: Any, where: str) -> None:
    error = refusal(template)
    assert error.problem.startswith(f"{where}: ") and "not a JSON number" in error.problem


def test_event_data_holding_nan_cannot_be_rendered() -> None:
    """The router refuses such events; only a task routed before it did can hold one."""
    with pytest.raises(InvalidInput) as caught:
        event_document(Event(type="t", data=b'{"a": [1, NaN]}'))
    assert caught.value.field == "data.a.1"
    with pytest.raises(InvalidInput):
        event_document(Event(type="t", data=b'{"a": 1e999}'))


def test_objects_may_nest_as_deep_as_the_limit() -> None:
    template: Any = "{{ data.n }}"
    for _ in range(MAX_DEPTH - 1):
        template = {"k": template}
    rendered = compile_template(template).render(DOCUMENT)
    for _ in range(MAX_DEPTH - 1):
        rendered = rendered["k"]
    assert rendered == 7
    error = refusal({"k": template})
    assert error.problem == "/k" * MAX_DEPTH + f": nesting is deeper than {MAX_DEPTH} levels"


def test_refusals_are_invalid_input_naming_the_template_field() -> None:
    error = refusal({"sig": {"$hash": "sha3", "of": ["a"]}})
    assert (error.field, error.problem) == ("template", "/sig/$hash: unknown hash algorithm 'sha3'; use md5, crc32, sha1, sha256")
    assert str(error).startswith("template: /sig/$hash: ")


def test_subscriptions_refuse_bad_templates_through_the_same_compiler() -> None:
    from pipeline.subscriptions.model import Subscription

    fields = {"name": "s", "url": "https://example.test/h", "event_types": ["*"]}
    with pytest.raises(InvalidInput) as caught:
        Subscription(**fields, template={"user": "{{ data.user"})
    assert (caught.value.field, caught.value.problem) == ("template", "/user: unclosed {{ at character 0")
    assert Subscription(**fields, template="{{ data }}").template == "{{ data }}"
