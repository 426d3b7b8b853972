import json

from pipeline.models import Event
from pipeline.router.matching import Matcher, decide, matching, type_matches
from pipeline.subscriptions.model import Subscription


def subscription(**fields) -> Subscription:
    return Subscription(**({"name": "s", "url": "https://example.test/h", "event_types": ["*"]} | fields))


def test_type_patterns() -> None:
    assert type_matches("*", "anything.at.all")
    assert type_matches("user.*", "user.created")
    assert type_matches("user.*", "user.profile.changed")
    assert not type_matches("user.*", "users.created")
    assert not type_matches("user.*", "user")
    assert type_matches("order.paid", "order.paid")
    assert not type_matches("order.paid", "order.paid.late")


def test_matching_honours_active_flag_types_and_tenant() -> None:
    event = Event(type="user.created", tenant="acme")
    wanted = subscription(event_types=["user.*"])
    paused = subscription(event_types=["user.*"], active=False)
    other_type = subscription(event_types=["order.*"])
    other_tenant = subscription(event_types=["*"], tenant="globex")
    same_tenant = subscription(event_types=["*"], tenant="acme")
    found = matching([wanted, paused, other_type, other_tenant, same_tenant], event)
    assert {s.id for s in found} == {wanted.id, same_tenant.id}


def test_decisions_say_why_nothing_matched() -> None:
    event = Event(type="user.created")
    assert decide([subscription(event_types=["order.*"])], event).reason == "no_match"
    assert decide([subscription(event_types=["user.*"], active=False)], event).reason == "paused"
    routed = decide([subscription(event_types=["user.*"])], event)
    assert routed.reason is None and len(routed.matched) == 1


def test_the_type_index_finds_exactly_the_matching_patterns() -> None:
    from pipeline.router.index import TypeIndex

    subs = {name: subscription(event_types=patterns) for name, patterns in {
        "all": ["*"], "users": ["user.*"], "profiles": ["user.profile.*"], "created": ["user.created"],
        "orders": ["order.*"], "twice": ["user.*", "user.created"]}.items()}
    index = TypeIndex(subs.values())
    names = {id(s): n for n, s in subs.items()}
    found = lambda t: sorted(names[id(s)] for s in index.candidates(t))  # noqa: E731
    assert found("user.created") == ["all", "created", "twice", "users"]
    assert found("user.profile.changed") == ["all", "profiles", "twice", "users"]
    assert found("userx.created") == ["all"]
    assert found("order") == ["all"]


def test_sources_filter_and_a_filtered_reason() -> None:
    devices = subscription(event_types=["*"], sources=["device-1", "device-2"])
    assert decide([devices], Event(type="t", source="device-2")).matched == [devices]
    dropped = decide([devices], Event(type="t", source="device-9"))
    assert (dropped.matched, dropped.reason) == ([], "filtered")


def test_a_disabled_subscription_is_still_routed_to_and_a_paused_one_is_not() -> None:
    event = Event(type="user.created")
    disabled = subscription(event_types=["user.*"]).disabled("410 Gone")
    assert not disabled.active
    assert decide([disabled], event).matched == [disabled]  # its topic keeps the backlog
    resumed_then_paused = disabled.patched({"active": False})
    assert decide([resumed_then_paused], event).reason == "paused"


def test_the_index_follows_changes_one_subscription_at_a_time() -> None:
    from pipeline.router.matching import Matcher

    event = Event(type="user.created")
    first = subscription(event_types=["user.created"])
    matcher = Matcher([first])
    assert [s.id for s in matcher.decide(event).matched] == [first.id]
    moved = first.model_copy(update={"event_types": ["order.*"]})
    matcher.put(moved)  # the same subscription, now wanting other types
    assert matcher.decide(event).reason == "no_match"
    assert [s.id for s in matcher.decide(Event(type="order.paid")).matched] == [first.id]
    filtered = subscription(event_types=["user.*"], filter={"data.plan": "pro"})
    matcher.put(filtered)
    assert matcher.decide(event).reason == "filtered"
    matcher.put(filtered.model_copy(update={"filter": None}))  # the filter taken away
    assert [s.id for s in matcher.decide(event).matched] == [filtered.id]
    matcher.remove(filtered.id)
    matcher.remove(first.id)
    matcher.remove("never-there")
    assert matcher.decide(event).reason == "no_match" and len(matcher.index) == 0
    assert matcher.index._exact == {} and matcher.index._prefixes == {}  # no empty buckets left behind


def outcome(decision) -> tuple[list[str], str | None]:  # type: ignore[no-untyped-def]
    return [s.id for s in decision.matched], decision.reason


def paid(amount: int, **fields) -> Event:
    return Event(type="order.paid", data=json.dumps({"amount": amount, "currency": "EUR"}).encode(), **fields)


def test_a_content_filter_routes_the_events_it_matches_and_filters_the_rest() -> None:
    big = subscription(event_types=["order.*"], filter={"data.amount": {"$gte": 100}})
    matcher = Matcher([big])
    assert outcome(matcher.decide(paid(150))) == ([big.id], None)
    assert outcome(matcher.decide(paid(99))) == ([], "filtered")
    assert matching([big], paid(100)) == [big]


def test_each_subscription_is_judged_by_its_own_filter_against_the_same_event() -> None:
    small = subscription(filter={"data.amount": {"$lt": 100}})
    big = subscription(filter={"data.amount": {"$gte": 100}})
    euros = subscription(filter={"data.currency": "EUR", "type": "order.paid"})
    unfiltered = subscription()
    matcher = Matcher([small, big, euros, unfiltered])
    assert {s.id for s in matcher.decide(paid(150)).matched} == {big.id, euros.id, unfiltered.id}
    assert {s.id for s in matcher.decide(paid(5)).matched} == {small.id, euros.id, unfiltered.id}


def test_a_filter_sees_the_envelope_and_data_that_is_not_json_as_null() -> None:
    by_source = subscription(filter={"source": "pos-1", "data": None})
    text = Event(type="t", source="pos-1", data=b"plain", content_type="text/plain")
    assert decide([by_source], text).matched == [by_source]
    assert decide([by_source], Event(type="t", source="pos-1", data=b"{}")).reason == "filtered"


def test_a_subscription_passed_over_does_not_hide_the_ones_after_it() -> None:
    event = paid(5, tenant="acme", source="pos-1")
    passed_over = [subscription(tenant="globex"), subscription(active=False), subscription(sources=["pos-2"]),
                   subscription(filter={"data.amount": {"$gt": 10}})]
    wanted = subscription()
    for skipped in passed_over:
        assert decide([skipped, wanted], event).matched == [wanted]
        assert decide([wanted, skipped], event).matched == [wanted]
    assert outcome(decide([*passed_over, wanted], event)) == ([wanted.id], None)


def test_the_reason_names_the_strongest_cause_paused_then_filtered_then_no_match() -> None:
    event = paid(5, source="pos-1")
    paused = subscription(active=False)
    by_source = subscription(sources=["pos-2"])
    by_content = subscription(filter={"data.amount": {"$gt": 10}})
    other_tenant = subscription(tenant="globex")
    assert decide([by_content, paused, by_source], event).reason == "paused"
    assert decide([by_source, paused], event).reason == "paused"
    assert decide([by_content], event).reason == "filtered"
    assert decide([by_source], event).reason == "filtered"
    assert decide([other_tenant], event).reason == "no_match"
    assert outcome(decide([], event)) == ([], "no_match")


def test_a_matcher_decides_many_events_with_the_filters_it_compiled_once() -> None:
    big = subscription(filter={"data.amount": {"$gte": 100}})
    matcher = Matcher([big])
    assert [bool(matcher.decide(paid(amount)).matched) for amount in (150, 5, 100, 99)] == [True, False, True, False]


def test_the_index_finds_wildcards_at_every_depth_of_a_long_type() -> None:
    from pipeline.router.index import TypeIndex

    subs = {prefix: subscription(event_types=[f"{prefix}.*"]) for prefix in ("a", "a.b", "a.b.c", "a.b.c.d")}
    index = TypeIndex(subs.values())
    assert {s.id for s in index.candidates("a.b.c.d.e")} == {s.id for s in subs.values()}
    assert {s.id for s in index.candidates("a.b.c.d")} == {subs[p].id for p in ("a", "a.b", "a.b.c")}
    assert {s.id for s in index.candidates("a.bb.c")} == {subs["a"].id}
    assert type_matches("a.b.*", "a.b.c.d") and not type_matches("a.b.*", "a.bc")
