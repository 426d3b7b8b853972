import json
from datetime import datetime, timezone
from typing import Any

import pytest

from pipeline.errors import InvalidInput
from pipeline.models import Event
from pipeline.documents import MISSING, event_document, lookup, parse_path
from pipeline.router.content_filter import MAX_DEPTH, canonical, compile_filter

DOCUMENT: dict[str, Any] = {
    "id": "evt_1", "type": "order.paid", "source": "device-1", "tenant": "acme",
    "time": "2026-01-02T03:04:05.678000Z", "ordering_key": None,
    "data": {
        "amount": 150, "price": 9.5, "currency": "EUR", "paid": True, "count": 1, "note": None,
        "user": {"name": "Ada Lovelace", "age": 36, "email": "ada@example.test"},
        "tags": ["vip", "eu"], "scores": [3, 7, 12],
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
        "matrix": [[1, 2], [3, 4]], "0": "zero-key", "empty": [],
    },
}


def matches(rule: Any, document: dict[str, Any] = DOCUMENT) -> bool:
    return compile_filter(rule).matches(document)


def refusal(rule: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        compile_filter(rule)
    assert caught.value.field == "filter"
    return caught.value


# -- paths -------------------------------------------------------------------------------------

def test_dotted_paths_reach_nested_values_and_array_elements() -> None:
    assert matches({"data.user.name": "Ada Lovelace"})
    assert matches({"data.items.1.sku": "B-2"})
    assert matches({"data.matrix.1.0": 3})
    assert not matches({"data.items.2.sku": "B-2"})  # past the end: missing
    assert matches({"type": "order.paid", "source": "device-1", "tenant": "acme"})


def test_a_numeric_segment_is_a_key_in_an_object() -> None:
    assert matches({"data.0": "zero-key"})


def test_lookup_returns_missing_rather_than_raising() -> None:
    assert lookup(DOCUMENT, parse_path("data.user.name.first")) is MISSING  # into a string
    assert lookup(DOCUMENT, parse_path("data.tags.x")) is MISSING  # non-numeric key into a list
    assert lookup(DOCUMENT, parse_path("data.note")) is None  # present, null
    assert lookup(DOCUMENT, parse_path("nothing")) is MISSING


def test_nested_objects_are_paths_like_convoy_flattens_them() -> None:
    assert matches({"data": {"user": {"age": {"$gte": 30}, "name": "Ada Lovelace"}}})
    assert not matches({"data": {"user": {"age": {"$gte": 40}}}})
    assert matches({"data": {"user.age": 36}})


def test_an_empty_filter_matches_everything() -> None:
    assert matches({})
    assert matches({}, {})


# -- equality ----------------------------------------------------------------------------------

def test_a_literal_is_an_implicit_eq() -> None:
    assert matches({"data.currency": "EUR"})
    assert not matches({"data.currency": "USD"})
    assert matches({"data.currency": {"$eq": "EUR"}})
    assert not matches({"data.currency": {"$eq": "eur"}})


def test_eq_compares_json_values_not_python_ones() -> None:
    assert matches({"data.amount": 150.0})  # 150 and 150.0 are one JSON number
    assert not matches({"data.paid": 1})  # true is not 1
    assert not matches({"data.count": True})  # nor 1 true
    assert matches({"data.paid": True})
    assert not matches({"data.amount": "150"})  # no string-number coercion
    assert matches({"data.note": None}) and not matches({"data.missing": None})


def test_eq_compares_objects_and_arrays_deeply() -> None:
    assert matches({"data.user": {"$eq": {"age": 36, "email": "ada@example.test", "name": "Ada Lovelace"}}})
    assert not matches({"data.user": {"$eq": {"age": 36}}})
    assert matches({"data.tags": {"$eq": ["vip", "eu"]}})
    assert not matches({"data.tags": {"$eq": ["eu", "vip"]}})  # order matters
    assert matches({"data.items": {"$eq": [{"qty": 2, "sku": "A-1"}, {"sku": "B-2", "qty": 1}]}})
    assert not matches({"data.items": {"$eq": [{"qty": True, "sku": "A-1"}, {"sku": "B-2", "qty": 1}]}})


def test_strings_are_compared_by_value_not_by_identity() -> None:
    # Literals in one module are often the very same object; strings from parsing never are.
    built, parsed = "".join(["E", "UR"]), json.loads('"EUR"')
    assert built is not parsed
    document = {"data": {"currency": built, "tags": ["x", "".join(["v", "ip"])]}}
    assert matches({"data.currency": parsed}, document)
    assert matches({"data.currency": {"$in": [json.loads('"USD"'), parsed]}}, document)
    assert matches({"data.tags": json.loads('"vip"')}, document)
    assert not matches({"data.currency": {"$neq": parsed}}, document)
    assert not matches({"data.currency": json.loads('"EURO"')}, document)


def test_false_and_true_are_different_values() -> None:
    for flag in (True, False):
        document = {"data": {"flag": flag}}
        assert matches({"data.flag": flag}, document) and not matches({"data.flag": not flag}, document)
        assert matches({"data.flag": {"$in": [flag]}}, document)
        assert not matches({"data.flag": {"$in": [not flag, None, 0, 1]}}, document)
        assert matches({"data.flag": {"$neq": not flag}}, document)


def test_null_and_strings_and_numbers_are_different_values() -> None:
    document = {"data": {"none": None, "zero": 0, "empty": ""}}
    assert not matches({"data.none": ""}, document) and not matches({"data.empty": None}, document)
    assert not matches({"data.zero": None}, document) and not matches({"data.zero": "0"}, document)
    assert not matches({"data.zero": False}, document) and not matches({"data.empty": []}, document)
    assert not matches({"data.empty": {}}, document) and not matches({"data.none": []}, document)


def test_values_that_are_not_json_equal_only_themselves() -> None:
    first, second = object(), object()
    assert canonical(first) == canonical(first) and canonical(first) != canonical(second)
    assert canonical(first) != canonical(None)


def test_an_empty_object_literal_is_equality_with_an_empty_object() -> None:
    assert matches({"data.obj": {}}, {"data": {"obj": {}}})
    assert not matches({"data.obj": {}}, {"data": {"obj": {"a": 1}}})


def test_eq_against_an_array_matches_any_element() -> None:
    assert matches({"data.tags": "vip"})
    assert matches({"data.tags": {"$eq": "eu"}})
    assert not matches({"data.tags": "us"})
    assert matches({"data.matrix": [3, 4]})  # an element that is itself an array


def test_neq_is_the_negation_of_eq_and_matches_a_missing_path() -> None:
    assert matches({"data.currency": {"$neq": "USD"}})
    assert not matches({"data.currency": {"$neq": "EUR"}})
    assert not matches({"data.tags": {"$neq": "vip"}})  # vip is among the tags
    assert matches({"data.tags": {"$neq": "us"}})
    assert matches({"data.absent": {"$neq": "anything"}})
    assert matches({"data.paid": {"$neq": 1}})


# -- ordering ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "operand", "expected"), [
    ("$gt", 149, True), ("$gt", 150, False), ("$gte", 150, True), ("$gte", 151, False),
    ("$lt", 151, True), ("$lt", 150, False), ("$lte", 150, True), ("$lte", 149.5, False),
    ("$gt", 149.99, True), ("$lt", 150.01, True),
])
def test_numeric_comparisons(op: str, operand: float, expected: bool) -> None:
    assert matches({"data.amount": {op: operand}}) is expected


def test_strings_compare_in_code_point_order_so_iso_times_compare_by_time() -> None:
    assert matches({"time": {"$gte": "2026-01-01T00:00:00Z", "$lt": "2026-02-01T00:00:00Z"}})
    assert not matches({"time": {"$gt": "2026-01-03"}})
    assert matches({"data.currency": {"$gt": "EUA", "$lte": "EUR"}})


def test_comparisons_across_types_are_false_never_errors() -> None:
    assert not matches({"data.currency": {"$gt": 1}})
    assert not matches({"data.currency": {"$lt": 1}})
    assert not matches({"data.amount": {"$gt": "1"}})
    assert not matches({"data.paid": {"$gte": 0}})  # a boolean is not a number
    assert not matches({"data.note": {"$lte": 0}})
    assert not matches({"data.user": {"$gt": 0}})
    assert not matches({"data.absent": {"$lt": 10}})


def test_several_operators_on_one_path_must_all_hold() -> None:
    assert matches({"data.amount": {"$gte": 100, "$lt": 200}})
    assert not matches({"data.amount": {"$gte": 100, "$lt": 150}})


def test_comparisons_against_an_array_match_any_element() -> None:
    assert matches({"data.scores": {"$gt": 10}})
    assert not matches({"data.scores": {"$gt": 12}})
    assert not matches({"data.empty": {"$gte": 0}})


# -- membership --------------------------------------------------------------------------------

def test_in_and_nin() -> None:
    assert matches({"data.currency": {"$in": ["USD", "EUR"]}})
    assert not matches({"data.currency": {"$in": ["USD", "GBP"]}})
    assert not matches({"data.currency": {"$in": []}})
    assert matches({"data.currency": {"$nin": ["USD", "GBP"]}})
    assert not matches({"data.currency": {"$nin": ["EUR"]}})
    assert matches({"data.currency": {"$nin": []}})


def test_in_keeps_booleans_apart_from_numbers_and_compares_objects() -> None:
    assert not matches({"data.paid": {"$in": [1, 0]}})
    assert matches({"data.paid": {"$in": [1, True]}})
    assert not matches({"data.count": {"$in": [True]}})
    assert matches({"data.amount": {"$in": [150.0]}})
    assert matches({"data.user": {"$in": [{"name": "Ada Lovelace", "age": 36, "email": "ada@example.test"}]}})
    assert matches({"data.note": {"$in": [None]}})


def test_in_against_an_array_matches_when_any_element_is_listed() -> None:
    assert matches({"data.tags": {"$in": ["eu", "us"]}})
    assert not matches({"data.tags": {"$in": ["us", "uk"]}})
    assert not matches({"data.tags": {"$nin": ["eu"]}})
    assert matches({"data.tags": {"$nin": ["us"]}})


def test_a_missing_path_is_in_nothing() -> None:
    assert not matches({"data.absent": {"$in": [None, "x"]}})
    assert matches({"data.absent": {"$nin": [None, "x"]}})


# -- existence and regex -----------------------------------------------------------------------

def test_exist() -> None:
    assert matches({"data.user.email": {"$exist": True}})
    assert not matches({"data.user.email": {"$exist": False}})
    assert matches({"data.user.phone": {"$exist": False}})
    assert not matches({"data.user.phone": {"$exist": True}})
    assert matches({"data.note": {"$exist": True}})  # null is present
    assert matches({"data.items.5": {"$exist": False}})


def test_regex_searches_strings() -> None:
    assert matches({"data.user.email": {"$regex": r"@example\.test$"}})
    assert matches({"data.user.name": {"$regex": "Love"}})  # a search, not a full match
    assert not matches({"data.user.name": {"$regex": "^Love"}})
    assert matches({"data.user.name": {"$regex": "(?i)^ada"}})
    assert matches({"data.tags": {"$regex": "^v"}})  # any element
    assert not matches({"data.tags": {"$regex": "^x"}})


def test_regex_on_non_strings_is_false() -> None:
    assert not matches({"data.amount": {"$regex": "150"}})
    assert not matches({"data.user": {"$regex": "Ada"}})
    assert not matches({"data.absent": {"$regex": ".*"}})


# -- combinators -------------------------------------------------------------------------------

def test_and_or() -> None:
    assert matches({"$or": [{"data.currency": "USD"}, {"data.amount": {"$gt": 100}}]})
    assert not matches({"$or": [{"data.currency": "USD"}, {"data.amount": {"$gt": 1000}}]})
    assert matches({"$and": [{"data.currency": "EUR"}, {"data.amount": {"$gt": 100}}]})
    assert not matches({"$and": [{"data.currency": "EUR"}, {"data.amount": {"$gt": 1000}}]})


def test_combinators_nest_and_combine_with_sibling_paths() -> None:
    rule = {"type": "order.paid",
            "$or": [{"data.currency": "USD"}, {"$and": [{"data.tags": "vip"}, {"data.user.age": {"$lt": 40}}]}]}
    assert matches(rule)
    assert not matches(rule | {"type": "order.refunded"})
    assert not matches({"$or": [{"data.currency": "USD"}, {"$and": [{"data.tags": "vip"}, {"data.user.age": 1}]}]})


def test_a_filter_written_once_matches_many_documents() -> None:
    content = compile_filter({"data.amount": {"$gte": 100}, "data.currency": "EUR"})
    documents = [{"data": {"amount": a, "currency": c}} for a, c in [(50, "EUR"), (100, "EUR"), (500, "USD"), (101, "EUR")]]
    assert [content.matches(d) for d in documents] == [False, True, False, True]


def test_matching_odd_documents_never_raises() -> None:
    content = compile_filter({"data.a.b": {"$gt": 1}, "data.c": {"$in": [1]}, "data.d": {"$regex": "x"}})
    for data in (None, [], "text", 3, {"a": [1, 2]}, {"a": {"b": "2"}}, {"c": {"x": 1}}, {"d": ["x", 1]}):
        content.matches({"data": data})
    assert not content.matches({})
    assert compile_filter({"data.c": {"$in": [1]}}).matches({"data": {"c": {1, 2}}}) is False  # not JSON


# -- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "message"), [
    ([], "(root): a filter must be a JSON object, not a list"),
    ("data.x", "(root): a filter must be a JSON object, not a string"),
    ({"data.x": {"$foo": 1}}, "data.x.$foo: unknown operator"),
    ({"$foo": 1}, "$foo: unknown operator here"),
    ({"data.x": {"$in": "a"}}, "data.x.$in: needs a list, not a string"),
    ({"data.x": {"$nin": {"a": 1}}}, "data.x.$nin: needs a list, not an object"),
    ({"data.x": {"$gt": [1]}}, "data.x.$gt: needs a number or a string, not a list"),
    ({"data.x": {"$gte": None}}, "data.x.$gte: needs a number or a string, not null"),
    ({"data.x": {"$lt": True}}, "data.x.$lt: needs a number or a string, not a boolean"),
    ({"data.x": {"$lte": {}}}, "data.x.$lte: needs a number or a string, not an object"),
    ({"data.x": {"$exist": "yes"}}, "data.x.$exist: needs true or false, not a string"),
    ({"data.x": {"$regex": 5}}, "data.x.$regex: needs a string, not a number"),
    ({"data.x": {"$regex": "("}}, "data.x.$regex: invalid regular expression"),
    ({"$and": {"a": 1}}, "$and: needs a non-empty list of filters, not an object"),
    ({"$or": []}, "$or: needs a non-empty list of filters, not a list"),
    ({"$or": [{"a": 1}, 3]}, "$or[1]: a filter must be a JSON object, not a number"),
    ({"$and": [{"a": {"$in": 1}}]}, "$and[0].a.$in: needs a list"),
    ({"data.x": {"$and": [{"a": 1}]}}, "data.x.$and: combines whole filters"),
    ({"data.x": {"$eq": 1, "y": 2}}, "data.x: an object cannot mix operators and field names"),
    ({"data..x": 1}, "data..x: path 'data..x' has an empty segment"),
    ({"data.x.": 1}, "data.x.: path 'data.x.' has an empty segment"),
    ({"data..x": {"$gt": 1}}, "data..x: path 'data..x' has an empty segment"),
    ({"data": {"x.": {"$exist": True}}}, "data.x.: path 'data.x.' has an empty segment"),
    ({"data.x": {"$in": (1, 2)}}, "data.x.$in: needs a list, not tuple"),
    ({"data.x": {"$regex": b"x"}}, "data.x.$regex: needs a string, not bytes"),
    ({"data.x": {"$gt": 1.5j}}, "data.x.$gt: needs a number or a string, not complex"),
    ({"": 1}, "(root): key '' is not a path"),
    ({"data": {"": 1}}, "data: key '' is not a path"),
])
def test_malformed_rules_are_refused_naming_where_and_why(rule: Any, message: str) -> None:
    assert message in str(refusal(rule))


def test_an_unknown_operator_message_lists_the_known_ones() -> None:
    assert "$eq $neq $gt $gte $lt $lte $in $nin $exist $regex" in refusal({"a": {"$ne": 1}}).problem


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    def nested(levels: int) -> dict[str, Any]:
        rule: dict[str, Any] = {"data.x": 1}
        for _ in range(levels - 1):
            rule = {"$and": [rule]}
        return rule

    assert matches(nested(MAX_DEPTH), {"data": {"x": 1}})
    assert f"nesting is deeper than {MAX_DEPTH} levels" in refusal(nested(MAX_DEPTH + 1)).problem
    deep_paths: dict[str, Any] = {"x": 1}
    for _ in range(MAX_DEPTH):
        deep_paths = {"k": deep_paths}
    assert refusal(deep_paths).problem == f"{'.'.join(['k'] * MAX_DEPTH)}: nesting is deeper than {MAX_DEPTH} levels"


def test_nested_objects_of_paths_may_be_as_deep_as_the_limit() -> None:
    rule: dict[str, Any] = {"x": 1}
    document: dict[str, Any] = {"x": 1}
    for _ in range(MAX_DEPTH - 1):
        rule, document = {"k": rule}, {"k": document}
    assert matches(rule, document)
    assert not matches(rule, {"k": 1})


def test_a_compiled_filter_keeps_its_rule_and_shows_it() -> None:
    rule = {"data.amount": {"$gte": 100}, "data.currency": "EUR"}
    content = compile_filter(rule)
    assert content.rule == rule
    assert repr(content) == 'ContentFilter({"data.amount": {"$gte": 100}, "data.currency": "EUR"})'
    at = datetime(2026, 1, 2, tzinfo=timezone.utc)  # only JSON reaches a subscription, but repr never raises
    assert repr(compile_filter({"data.at": at})) == 'ContentFilter({"data.at": "2026-01-02 00:00:00+00:00"})'


def test_refusals_are_invalid_input_naming_the_filter_field() -> None:
    error = refusal({"data.x": {"$in": 3}})
    assert (error.field, error.problem) == ("filter", "data.x.$in: needs a list, not a number")
    assert str(error) == "filter: data.x.$in: needs a list, not a number"


# -- the event document ------------------------------------------------------------------------

def test_event_document_parses_json_data_and_carries_the_metadata() -> None:
    event = Event(id="evt_9", type="user.created", source="svc", tenant="acme", ordering_key="k",
                  time=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc), data=b'{"user": {"age": 36}}')
    assert event_document(event) == {
        "id": "evt_9", "type": "user.created", "source": "svc", "tenant": "acme",
        "time": "2026-01-02T03:04:05.678000Z", "ordering_key": "k", "data": {"user": {"age": 36}}}


def test_event_document_time_is_the_envelopes_time() -> None:
    from pipeline.dispatcher.request import envelope_body

    event = Event(type="t", data=b"[1]")
    assert event_document(event)["time"] == json.loads(envelope_body(event))["time"]


def test_event_document_has_null_data_for_other_content() -> None:
    assert event_document(Event(type="t", data=b"\x00\x01", content_type="application/octet-stream"))["data"] is None
    assert event_document(Event(type="t", data=b"not json"))["data"] is None
    assert event_document(Event(type="t", data=b"[1, 2]"))["data"] == [1, 2]


def test_filters_run_on_event_documents() -> None:
    content = compile_filter({"data.amount": {"$gte": 100}, "source": {"$in": ["pos-1", "pos-2"]}})
    assert content.matches(event_document(Event(type="t", source="pos-2", data=b'{"amount": 100}')))
    assert not content.matches(event_document(Event(type="t", source="pos-3", data=b'{"amount": 100}')))
    assert not content.matches(event_document(Event(type="t", source="pos-1", data=b"x", content_type="text/plain")))


def test_subscriptions_refuse_malformed_filters_through_the_same_compiler() -> None:
    from pipeline.subscriptions.model import Subscription

    fields = {"name": "s", "url": "https://example.test/h", "event_types": ["*"]}
    with pytest.raises(InvalidInput) as caught:
        Subscription(**fields, filter={"data.amount": {"$in": 5}})
    assert (caught.value.field, caught.value.problem) == ("filter", "data.amount.$in: needs a list, not a number")
    assert Subscription(**fields, filter={"data.amount": {"$gte": 100}}).filter == {"data.amount": {"$gte": 100}}
