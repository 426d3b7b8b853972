"""Which endpoints a dispatcher fetches: shards by subscription id, parking of quiet partitions,
and the subscriptions table telling who changed."""

from __future__ import annotations

from pipeline.dispatcher.parking import Parking
from pipeline.dispatcher.records import PartitionId
from pipeline.dispatcher.shards import shard_of
from pipeline.subscriptions.model import Subscription

A, B = PartitionId("endpoint.a", 0), PartitionId("endpoint.b", 0)


def test_shards_are_stable_and_spread() -> None:
    ids = [f"sub_{n:04d}" for n in range(1000)]
    shards = [shard_of(s, 16) for s in ids]
    assert shards == [shard_of(s, 16) for s in ids]  # the same in every process, unlike hash()
    assert shard_of("sub_0001", 16) == 1544186661 % 16  # crc32: fixed forever, or endpoints would move
    assert set(shards) == set(range(16)) and max(shards.count(k) for k in range(16)) < 1000 / 16 * 1.5


def test_a_quiet_partition_is_parked_and_woken_when_its_end_moves() -> None:
    parking = Parking(idle_s=5.0)
    parking.started(A, next_offset=10, now=0.0)
    parking.started(B, next_offset=0, now=0.0)
    parking.fetched(B, offset=3, now=4.0)
    assert parking.idle(4.9, busy=lambda _: False) == []  # nobody quiet for 5 s yet
    assert parking.idle(5.0, busy=lambda _: False) == [A]
    assert parking.park([A], {A: 11}, quiet_since=0.0) == []  # one more task to fetch: not parked
    assert parking.park([A], {A: 10}, quiet_since=0.0) == [A]
    assert parking.idle(9.0, busy=lambda p: p == B) == []  # B is quiet but still delivering; A is parked already
    assert parking.grown({A: 10}, now=9.5) == []  # nothing past what was fetched
    assert parking.grown({A: 11}, now=10.0) == [A] and A not in parking.parked
    assert parking.idle(14.9, busy=lambda _: False) == [B]  # A was woken at 10


def test_a_doorbell_wakes_a_parked_partition_and_keeps_an_active_one_awake() -> None:
    parking = Parking(idle_s=5.0)
    parking.started(A, next_offset=0, now=0.0)
    parking.started(B, next_offset=0, now=0.0)
    parking.park([A], {A: 0}, quiet_since=0.0)
    assert parking.park([B], {B: 0}, quiet_since=-1.0) == []  # active after quiet_since: a ring came meanwhile
    assert parking.rung([A, B], now=4.0) == [A] and parking.parked == set()
    assert parking.idle(8.9, busy=lambda _: False) == []  # the ring counts as activity for both
    assert sorted(parking.idle(9.0, busy=lambda _: False)) == [A, B]
    assert parking.rung([PartitionId("endpoint.unknown", 0)], now=9.0) == []  # not ours: nothing happens


def test_a_message_from_a_parked_partition_unparks_it() -> None:
    parking = Parking(idle_s=1.0)
    parking.started(A, next_offset=0, now=0.0)
    parking.park(parking.idle(2.0, busy=lambda _: False), {A: 0}, quiet_since=1.0)
    assert parking.parked == {A}
    assert parking.fetched(A, offset=0, now=2.1) and parking.parked == set()
    assert not parking.fetched(A, offset=1, now=2.2)  # already awake
    parking.forget([A])
    assert parking.idle(100.0, busy=lambda _: False) == []


async def test_the_table_names_what_changed_to_its_listeners(settings) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from pipeline.subscriptions.table import SubscriptionTable
    from pipeline.subscriptions.writer import SubscriptionWriter
    from tests.polling import until

    table = SubscriptionTable(settings)
    seen: list[set[str]] = []
    table.on_change(seen.append)
    follower = asyncio.create_task(table.run())
    try:
        await table.wait_loaded()
        writer = SubscriptionWriter(settings)
        subscription = Subscription(name="s", url="https://example.com/hook", event_types=["*"])
        await asyncio.to_thread(writer.put, subscription)
        await until(lambda: table.get(subscription.id) is not None, timeout_s=10)
        await asyncio.to_thread(writer.delete, subscription.id)
        await until(lambda: table.get(subscription.id) is None, timeout_s=10)
        assert set().union(*seen) == {subscription.id} and len(seen) >= 2
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
