from pipeline.models import Event
from pipeline.subscriptions.model import Subscription
from pipeline.router.matching import decide, matching, type_matches


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
