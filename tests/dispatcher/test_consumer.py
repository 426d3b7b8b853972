"""The endpoint consumer: what it owns, what it pauses, what it commits, against a stand-in client."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from pipeline.config import Settings
from pipeline.dispatcher.consumer import ASSIGN_CHUNK, EndpointConsumer
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.partition import LanePolicy, PartitionWork
from pipeline.dispatcher.progress import CommitMetadata, EndpointState, Progress, RetryProgress
from pipeline.dispatcher.records import PartitionId
from pipeline.errors import ServiceError
from pipeline.kafka.admin import WAKEUP_PARTITIONS
from pipeline.kafka.clients import flush_or_raise, reliable_producer
from pipeline.topics import TopicNames
from tests.dispatcher.fakes import FakeMessage, FakeThreadedConsumer
from tests.polling import until


class StubDeliverer:
    """What the consumer asks of the deliverer; deliveries wait until released."""

    def __init__(self) -> None:
        self.table = SimpleNamespace(rows={}, get=lambda _: None, on_change=lambda _: None)
        self.progress = RetryProgress()
        self.letting_go: set[tuple[str, int]] = set()
        self.release = asyncio.Event()
        self.delivered: list[int] = []
        self.learned: dict[str, EndpointState] = {}
        self.forgotten: list[str] = []

    async def deliver(self, records: list) -> None:  # type: ignore[type-arg]
        await self.release.wait()
        self.delivered.extend(record.offset for record in records)

    def lane_policy(self, subscription_id: str) -> LanePolicy:
        return LanePolicy()

    def endpoint_state(self, subscription_id: str) -> EndpointState:
        return self.learned.get(subscription_id, EndpointState())

    def learn_endpoint_state(self, subscription_id: str, state: EndpointState) -> None:
        self.learned[subscription_id] = state

    def forget_endpoint(self, subscription_id: str) -> None:
        self.forgotten.append(subscription_id)


class StubDirectory:
    def __init__(self, names: TopicNames):
        self.names = names

    def shard(self, subscription_id: str) -> int:
        return 0

    def subscriptions_in(self, shards: set[int]) -> list[str]:
        return ["sub_a"] if 0 in shards else []

    async def partitions_of(self, subscription_ids: list[str]) -> list[PartitionId]:
        return [PartitionId(self.names.endpoint(s), 0) for s in subscription_ids]


def consumer_for(settings: Settings, outbox: Outbox | None = None) -> tuple[EndpointConsumer, FakeThreadedConsumer, StubDeliverer]:
    client, deliverer = FakeThreadedConsumer(), StubDeliverer()
    consumer = EndpointConsumer(settings, deliverer, outbox or Outbox(settings), client=client)  # type: ignore[arg-type]
    consumer.directory = StubDirectory(consumer.names)  # type: ignore[assignment]
    consumer._end_offsets = lambda partitions: {}  # type: ignore[method-assign]  # unknown: nothing parked at once
    return consumer, client, deliverer


def messages(topic: str, offsets: range, key: bytes = b"k") -> list[FakeMessage]:
    return [FakeMessage(topic, 0, offset, key) for offset in offsets]


async def test_a_partition_let_go_of_mid_iteration_is_neither_delivered_nor_resumed(settings: Settings) -> None:
    """aiokafka crashed here (an AssertionError in resume()) when a rebalance took a paused partition
    away between a fetch and the next round: the stand-in asserts the same way."""
    consumer, client, deliverer = consumer_for(settings.model_copy(update={"max_in_flight_per_partition": 2}))
    topic = consumer.names.endpoint("sub_a")
    await consumer._gain(["sub_a"])
    client.waiting = messages(topic, range(0, 3), key=b"")  # distinct lanes: a key each, by offset
    for message, key in zip(client.waiting, (b"a", b"b", b"c")):
        message.key_ = key
    consumer._submit(await client.take(100, 0))
    await consumer._apply_backpressure()
    assert PartitionId(topic, 0) in client.raw.paused  # two lanes delivering: full
    fetched_before_release = messages(topic, range(3, 6))
    await consumer.release([PartitionId(topic, 0)], grace_s=0.01)
    consumer._submit(fetched_before_release)  # arrived from the fetch made before the release
    await consumer._apply_backpressure()  # the stand-in raises if it resumes what is not assigned
    assert client.raw.assigned == set() and consumer._work == {}
    deliverer.release.set()
    await asyncio.sleep(0.01)
    assert deliverer.delivered == []  # cancelled at the release, redelivered by the next owner


async def test_nothing_fetched_from_a_lost_shard_is_delivered_while_a_commit_holds_its_release_up(
        settings: Settings) -> None:
    """A shard's session can expire while a broker is away, and the commit under way then holds
    the assignment lock until the broker is back: tasks fetched from the lost shard's partitions
    meanwhile were delivered, and delivered again by the shard's next owner."""
    consumer, client, deliverer = consumer_for(settings)
    topic = consumer.names.endpoint("sub_a")
    await consumer._gain_shards({0})
    deliverer.release.set()
    async with consumer._committing:  # a commit waiting for the broker
        losing = asyncio.create_task(consumer._lose_shards({0}))
        await until(lambda: PartitionId(topic, 0) in deliverer.letting_go)
        consumer._submit(messages(topic, range(0, 3)))  # fetched once the broker answers again
        await asyncio.sleep(0.01)
        assert deliverer.delivered == []
    await losing
    assert consumer._work == {} and deliverer.letting_go == set()
    await consumer._gain_shards({0})  # back, here: delivered as any other
    consumer._submit(messages(topic, range(0, 3)))
    await until(lambda: deliverer.delivered == [0, 1, 2])


async def test_a_new_subscription_is_not_held_up_by_a_commit_waiting_for_the_broker(settings: Settings) -> None:
    """Its first event is on its way; what is committed meanwhile is none of its business."""
    consumer, client, deliverer = consumer_for(settings)
    flushing, broker_back = asyncio.Event(), asyncio.Event()

    async def flush_waiting_for_the_broker() -> None:
        flushing.set()
        await broker_back.wait()

    consumer.outbox.flush = flush_waiting_for_the_broker  # type: ignore[method-assign]
    await consumer._gain(["sub_a"])
    deliverer.release.set()
    consumer._submit(messages(consumer.names.endpoint("sub_a"), range(0, 3)))
    committing = asyncio.create_task(consumer._keep_committing())
    try:
        await asyncio.wait_for(flushing.wait(), timeout=10)
        await asyncio.wait_for(consumer._gain(["sub_b"]), timeout=10)
        assert PartitionId(consumer.names.endpoint("sub_b"), 0) in client.raw.assigned
    finally:
        broker_back.set()
        committing.cancel()


async def test_a_large_gain_is_assigned_a_chunk_at_a_time(settings: Settings) -> None:
    """Each call holds the consumer's thread, where this dispatcher's own endpoints are fetched:
    taking over thousands of partitions in one call held it for 13.6 s."""
    consumer, client, _ = consumer_for(settings)
    sizes: list[int] = []
    assign = client.raw.incremental_assign
    client.raw.incremental_assign = lambda partitions: sizes.append(len(partitions)) or assign(partitions)  # type: ignore[method-assign]
    subscription_ids = [f"sub_{n}" for n in range(2 * ASSIGN_CHUNK + 1)]
    await consumer._gain(subscription_ids)
    assert sizes == [ASSIGN_CHUNK, ASSIGN_CHUNK, 1]
    assert client.raw.assigned == {PartitionId(consumer.names.endpoint(s), 0) for s in subscription_ids}


async def test_a_handover_assigns_only_the_partitions_with_tasks_waiting_in_as_few_calls_as_it_can(
        settings: Settings) -> None:
    """Each call waits its turn on the consumer's thread: a handover of 5,010 partitions, 4,880 of
    them caught up, had made a call for each chunk of 250, and waited 4.8 s in all."""
    consumer, client, _ = consumer_for(settings)
    sizes: list[int] = []
    assign = client.raw.incremental_assign
    client.raw.incremental_assign = lambda partitions: sizes.append(len(partitions)) or assign(partitions)  # type: ignore[method-assign]
    subscription_ids = [f"sub_{n}" for n in range(3 * ASSIGN_CHUNK)]
    waiting = {PartitionId(consumer.names.endpoint(s), 0) for s in subscription_ids[::50]}
    consumer.directory.subscriptions_in = lambda shards: subscription_ids  # type: ignore[union-attr]
    consumer._end_offsets = lambda partitions: {p: int(p in waiting) for p in partitions}  # type: ignore[method-assign]
    await consumer._gain_shards({0})
    assert sizes == [len(waiting)] and client.raw.assigned == waiting
    assert consumer.partition_counts() == (len(subscription_ids), len(subscription_ids) - len(waiting))


async def test_a_gained_partition_carries_on_where_its_previous_owner_committed(settings: Settings) -> None:
    consumer, client, deliverer = consumer_for(settings)
    topic = consumer.names.endpoint("sub_a")
    state = EndpointState(streak_began=1_800_000_000.0, streak_failures=7, held_until=1_800_000_100.0)
    client.raw.committed_offsets[PartitionId(topic, 0)] = (42, CommitMetadata(Progress(3, 1_800_000_050.0), state).encode())
    await consumer._gain(["sub_a"])
    assert deliverer.learned["sub_a"] == state
    assert deliverer.progress.of(SimpleNamespace(topic=topic, partition=0, offset=42)) == Progress(3, 1_800_000_050.0)
    assert consumer._work[PartitionId(topic, 0)].committable() == 42  # committed again later, before it expires


async def test_a_busy_key_does_not_pause_the_other_keys_of_its_partition(settings: Settings) -> None:
    consumer, client, deliverer = consumer_for(settings.model_copy(update={"max_in_flight_per_partition": 4}))
    topic = consumer.names.endpoint("sub_a")
    await consumer._gain(["sub_a"])
    consumer._submit(messages(topic, range(0, 100), key=b"failing"))  # one key, a hundred deep
    await consumer._apply_backpressure()
    assert client.raw.paused == set()
    work = consumer._work[PartitionId(topic, 0)]
    assert work.in_flight == 1 and work.uncommitted == 100
    deliverer.release.set()
    await until(lambda: work.unfinished == 0)


async def test_a_partition_pauses_when_too_much_finished_waits_behind_a_retried_task(settings: Settings) -> None:
    consumer, client, deliverer = consumer_for(settings.model_copy(update={"max_uncommitted_per_partition": 10}))
    topic = consumer.names.endpoint("sub_a")
    await consumer._gain(["sub_a"])
    work = consumer._work[PartitionId(topic, 0)]
    blocked = asyncio.Event()

    async def deliver(records: list) -> None:  # type: ignore[type-arg]
        if records[0].offset == 0:
            await blocked.wait()  # being retried

    work._handle = deliver
    consumer._submit([FakeMessage(topic, 0, offset, f"k{offset}".encode()) for offset in range(10)])
    await until(lambda: work.in_flight == 1)
    await consumer._apply_backpressure()
    assert PartitionId(topic, 0) in client.raw.paused  # one in flight, but ten uncommitted
    blocked.set()
    await until(lambda: work.in_flight == 0)
    work.committable()
    await consumer._apply_backpressure()
    assert client.raw.paused == set()


async def test_the_consumer_commits_nothing_once_a_flush_failed(settings: Settings) -> None:
    outbox = Outbox(settings)
    consumer, client, deliverer = consumer_for(settings, outbox)
    topic = consumer.names.endpoint("sub_a")
    await consumer._gain(["sub_a"])
    deliverer.release.set()
    consumer._submit(messages(topic, range(0, 1)))
    await until(lambda: deliverer.delivered == [0])
    outbox._writer._on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), SimpleNamespace(topic=lambda: "dead-letters"))
    with pytest.raises(ServiceError):
        await consumer._commit_busy()
    await consumer.release([PartitionId(topic, 0)], grace_s=1.0)  # the shutdown path after the failure
    assert client.raw.commits == []
    assert consumer._work == {}


async def test_finished_offsets_are_committed_with_the_endpoint_state(settings: Settings) -> None:
    consumer, client, deliverer = consumer_for(settings)
    topic = consumer.names.endpoint("sub_a")
    await consumer._gain(["sub_a"])
    deliverer.release.set()
    deliverer.learned["sub_a"] = EndpointState(held_until=4_000_000_000.0)
    consumer._submit(messages(topic, range(0, 5)))
    await until(lambda: len(deliverer.delivered) == 5)
    await consumer._commit_busy()
    offset, metadata = client.raw.commits[-1][PartitionId(topic, 0)]
    assert offset == 5 and CommitMetadata.parse(metadata).endpoint.held_until == 4_000_000_000.0
    await consumer._commit_busy()
    assert len(client.raw.commits) == 1  # nothing new: nothing committed again


async def park(consumer: EndpointConsumer, partition: PartitionId, next_offset: int = 0) -> None:
    assert consumer._parking.park([partition], {partition: next_offset}, time.monotonic() + 60) == [partition]
    consumer._flow_changed.add(partition)
    await consumer._apply_pauses()


async def test_a_parked_partition_is_unassigned_and_its_doorbell_assigns_it_where_fetching_left_off(
        settings: Settings) -> None:
    """Parked partitions are not paused but unassigned: with ten thousand assigned, paused or not,
    each call that assigns a new endpoint's partition held the whole dispatcher for 13 ms."""
    consumer, client, _ = consumer_for(settings)
    partition = PartitionId(consumer.names.endpoint("sub_a"), 0)
    await consumer._gain(["sub_a"])
    consumer._submit(messages(partition.topic, range(3)))
    consumer._busy.clear()  # delivered and committed
    await park(consumer, partition, next_offset=3)
    assert client.raw.assigned == set() and client.raw.paused == set()
    consumer._rung(b"sub_a", time.monotonic())
    await consumer._apply_pauses()
    assert client.raw.assigned == {partition} and client.raw.assigned_at[partition] == 3


async def test_a_consumer_that_knows_many_parked_topics_is_renewed_with_what_is_fetched_now(settings: Settings) -> None:
    """librdkafka keeps every topic a consumer was ever assigned, and its work grows with them: the
    new consumer gets the partitions fetched now, each from the next offset not yet handed over,
    the full ones paused, and the doorbells from the next one not yet read."""
    settings = settings.model_copy(update={"dispatcher_renew_after_topics": 2})
    consumer, client, _ = consumer_for(settings)
    consumer._doorbells_next = {0: 7, 1: 0}
    subscription_ids = ["sub_a", "sub_b", "sub_c", "sub_d", "sub_e"]
    await consumer._gain(subscription_ids)
    active, full, *quiet = (PartitionId(consumer.names.endpoint(s), 0) for s in subscription_ids)
    consumer._submit([*messages(active.topic, range(4)), *messages(full.topic, range(2))])
    consumer._submit([FakeMessage(consumer.names.dispatcher_wakeups, 0, 7, b"sub_a")])
    consumer._full.add(full)
    consumer._flow_changed.add(full)
    await consumer._apply_pauses()
    consumer._busy -= set(quiet)
    for partition in quiet[:2]:
        await park(consumer, partition)
    assert not consumer._renewal_due()  # two known beyond the three assigned: not more than two
    await park(consumer, quiet[2])
    assert consumer._renewal_due()
    old = client.raw
    await consumer._renew()
    assert client.retired == [old] and not consumer._renewal_due()
    wakeups = consumer.names.dispatcher_wakeups
    assert client.raw.assigned_at == {active: 4, full: 2, PartitionId(wakeups, 0): 8, PartitionId(wakeups, 1): 0}
    assert client.raw.paused == {full}
    consumer._rung(b"sub_c", time.monotonic())
    await consumer._apply_pauses()
    assert client.raw.assigned_at[quiet[0]] == 0


async def test_a_partition_paused_before_it_was_parked_is_resumed_when_woken(settings: Settings) -> None:
    """librdkafka keeps a partition paused through an unassign and a new assign (the stand-in too,
    and tests/kafka/test_pausing.py checks librdkafka still does)."""
    consumer, client, _ = consumer_for(settings)
    partition = PartitionId(consumer.names.endpoint("sub_a"), 0)
    await consumer._gain(["sub_a"])
    consumer._full.add(partition)
    consumer._flow_changed.add(partition)
    await consumer._apply_pauses()
    consumer._full.discard(partition)
    await park(consumer, partition)  # drained and quiet before the resume was applied
    assert client.raw.assigned == set() and partition in client.raw.paused
    consumer._rung(b"sub_a", time.monotonic())
    await consumer._apply_pauses()
    assert client.raw.assigned == {partition} and client.raw.paused == set()


async def test_a_partition_parked_before_its_shard_went_away_is_fetched_when_it_comes_back(settings: Settings) -> None:
    consumer, client, _ = consumer_for(settings)
    partition = PartitionId(consumer.names.endpoint("sub_a"), 0)
    await consumer._gain(["sub_a"])
    await park(consumer, partition)
    await consumer.release([partition], grace_s=0.01)  # the stand-in refuses to unassign what is not assigned
    assert consumer._work == {} and consumer._unassigned == set()
    await consumer._gain(["sub_a"])
    assert partition in client.raw.assigned and partition not in client.raw.paused


async def test_a_doorbell_that_comes_while_its_partition_is_being_parked_assigns_it_again(settings: Settings) -> None:
    """The unassign waits behind a poll, and that poll can bring the doorbell: the partition was
    left unassigned but no longer parked, so neither a doorbell nor the sweep would ever fetch it."""
    consumer, client, _ = consumer_for(settings)
    partition = PartitionId(consumer.names.endpoint("sub_a"), 0)
    await consumer._gain(["sub_a"])
    assert consumer._parking.park([partition], {partition: 0}, time.monotonic() + 60) == [partition]
    consumer._flow_changed.add(partition)
    client.held.add("incremental_unassign")
    parking = asyncio.create_task(consumer._apply_pauses())
    await asyncio.sleep(0)  # the pause is on its way, waiting behind the poll
    consumer._rung(b"sub_a", time.monotonic())  # what that poll brought
    fetching = asyncio.create_task(consumer._apply_pauses())
    await asyncio.sleep(0)
    client.go_on.set()
    await asyncio.gather(parking, fetching)
    assert partition not in consumer._parking.parked and client.raw.assigned == {partition}
    assert client.raw.calls[-2:] == ["incremental_unassign", "incremental_assign"]


async def test_the_sweep_resumes_a_partition_paused_for_nothing(settings: Settings) -> None:
    consumer, client, _ = consumer_for(settings)
    partition = PartitionId(consumer.names.endpoint("sub_a"), 0)
    await consumer._gain(["sub_a"])
    client.raw.paused.add(partition)
    consumer._paused.add(partition)  # neither full nor parked: as a lost race would leave it
    await consumer._sweep(time.monotonic())
    await consumer._apply_pauses()
    assert partition not in client.raw.paused and consumer._paused == set()


async def test_the_sweep_assigns_a_partition_whose_wake_failed(settings: Settings) -> None:
    consumer, client, _ = consumer_for(settings)
    partition = PartitionId(consumer.names.endpoint("sub_a"), 0)
    await consumer._gain(["sub_a"])
    await park(consumer, partition)
    assign = client.raw.incremental_assign

    def refused(partitions: list[TopicPartition]) -> None:
        client.raw.incremental_assign = assign  # type: ignore[method-assign]
        raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    client.raw.incremental_assign = refused  # type: ignore[method-assign]
    consumer._rung(b"sub_a", time.monotonic())
    await consumer._apply_pauses()
    assert client.raw.assigned == set()
    await consumer._sweep(time.monotonic())
    await consumer._apply_pauses()
    assert client.raw.assigned == {partition}


async def test_a_parked_partition_the_sweep_finds_grown_is_resumed_by_the_sweep_itself(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A pause applied while the sweep waited for the end offsets took the set the sweep then
    added the grown partition to: it was left paused, and only the check for partitions paused for
    nothing resumed it."""
    consumer, client, _ = consumer_for(settings)
    partition = PartitionId(consumer.names.endpoint("sub_a"), 0)
    await consumer._gain(["sub_a"])
    await park(consumer, partition)
    asked, answer = threading.Event(), threading.Event()

    def end_offsets(partitions: list[PartitionId]) -> dict[PartitionId, int]:
        asked.set()
        answer.wait(10)
        return {partition: 3}  # grown: three tasks written without a doorbell

    consumer._end_offsets = end_offsets  # type: ignore[method-assign]
    sweeping = asyncio.create_task(consumer._sweep(time.monotonic()))
    await until(asked.is_set)
    consumer._flow_changed.add(PartitionId(consumer.names.endpoint("sub_b"), 0))
    await consumer._apply_pauses()  # the fetching's, while the sweep waits for the broker
    answer.set()
    await sweeping
    await consumer._apply_pauses()
    assert client.raw.assigned == {partition} and client.raw.assigned_at[partition] == 0
    assert "for no reason" not in caplog.text


async def test_a_shard_gained_starts_its_caught_up_partitions_parked(settings: Settings) -> None:
    """After a handover, a first fetch naming thousands of idle partitions kept the broker busy for
    seconds, and assigning them held the dispatcher for seconds more: those with nothing left to
    fetch are not assigned, and are woken by their doorbells as any other."""
    consumer, client, _ = consumer_for(settings)
    partition = PartitionId(consumer.names.endpoint("sub_a"), 0)
    client.raw.committed_offsets[partition] = (5, "")
    consumer._end_offsets = lambda partitions: {partition: 5}  # type: ignore[method-assign]
    await consumer._gain_shards({0})
    assert client.raw.calls == [] and consumer.partition_counts() == (1, 1)
    consumer._rung(b"sub_a", time.monotonic())
    await consumer._apply_pauses()
    assert client.raw.assigned == {partition} and client.raw.assigned_at[partition] == 5


async def test_a_shard_gained_fetches_at_once_the_partitions_with_tasks_waiting(settings: Settings) -> None:
    consumer, client, _ = consumer_for(settings)
    partition = PartitionId(consumer.names.endpoint("sub_a"), 0)
    client.raw.committed_offsets[partition] = (5, "")
    client.raw.paused.add(partition)  # parked here before the shard went away: librdkafka keeps it paused
    consumer._ever_paused.add(partition)
    consumer._end_offsets = lambda partitions: {partition: 7}  # type: ignore[method-assign]
    await consumer._gain_shards({0})
    assert partition in client.raw.assigned and partition not in client.raw.paused


async def test_a_new_subscription_is_fetched_at_once(settings: Settings) -> None:
    """Its first task is on its way: parked, it would wait for a doorbell that may have rung
    before the dispatcher knew the partition was its own."""
    consumer, client, _ = consumer_for(settings)

    def never(partitions: list[PartitionId]) -> dict[PartitionId, int]:
        raise AssertionError("a new subscription's end offsets are not looked at")

    consumer._end_offsets = never  # type: ignore[method-assign]
    await consumer._gain(["sub_a"])
    assert client.raw.assigned and not client.raw.paused


async def test_a_new_subscription_is_assigned_without_a_resume(settings: Settings) -> None:
    """Never paused here, it has nothing to resume, and a resume keeps the GIL while librdkafka
    works: with ten thousand partitions assigned, every call held the whole dispatcher."""
    consumer, client, _ = consumer_for(settings)
    resumed: list[list[TopicPartition]] = []
    resume = client.raw.resume
    client.raw.resume = lambda partitions: resumed.append(list(partitions)) or resume(partitions)  # type: ignore[method-assign]
    await consumer._gain(["sub_a", "sub_b"])
    assert client.raw.assigned == {PartitionId(consumer.names.endpoint(s), 0) for s in ("sub_a", "sub_b")}
    assert not [partitions for partitions in resumed if partitions]


@pytest.mark.integration
async def test_a_doorbell_rung_as_soon_as_the_dispatcher_listens_is_heard(settings: Settings) -> None:
    """A shard gained right after the start parks its caught-up partitions; the doorbell of a task
    written next must not fall in the second librdkafka takes to find where OFFSET_END is."""
    consumer = EndpointConsumer(settings, StubDeliverer(), Outbox(settings))  # type: ignore[arg-type]
    producer = reliable_producer(settings)
    producer.produce(consumer.names.events, value=b"")  # connected, and its producer id in hand
    flush_or_raise(producer)
    try:
        await consumer._listen_for_doorbells()
        for partition in range(WAKEUP_PARTITIONS):
            producer.produce(consumer.names.dispatcher_wakeups, key=b"sub_a", value=b"", partition=partition)
        flush_or_raise(producer)
        heard: set[int] = set()
        deadline = time.monotonic() + 15
        while len(heard) < WAKEUP_PARTITIONS and time.monotonic() < deadline:
            heard |= {message.partition() for message in await consumer._consumer.take(100, 0.5)
                      if message.error() is None}
        assert heard == set(range(WAKEUP_PARTITIONS))
    finally:
        await consumer.close()


@pytest.mark.integration
async def test_a_gain_reads_committed_offsets_without_waiting_for_the_fetching_thread(settings: Settings) -> None:
    """That thread is busy with polls and pauses while endpoints are many."""
    consumer = EndpointConsumer(settings, StubDeliverer(), Outbox(settings))  # type: ignore[arg-type]
    busy = threading.Event()
    held = asyncio.ensure_future(consumer._consumer.call(busy.wait))
    try:
        partition = PartitionId(consumer.names.events, 0)
        committed = await asyncio.wait_for(consumer._committed_offsets([partition]), timeout=30)
        assert committed[partition][0] < 0  # nothing committed there
    finally:
        busy.set()
        await held
        await consumer.close()


@pytest.mark.integration
async def test_a_commit_goes_through_while_the_fetching_thread_is_busy(settings: Settings) -> None:
    """A synchronous commit waits a round trip to the broker, a long one when it is busy: on the
    fetching consumer's thread, fetches, pauses and new endpoints' assignments waited behind it,
    and it behind them."""
    consumer = EndpointConsumer(settings, StubDeliverer(), Outbox(settings))  # type: ignore[arg-type]
    partition = PartitionId(consumer.names.events, 0)
    work = PartitionWork(StubDeliverer().deliver, start_offset=3)
    busy = threading.Event()
    held = asyncio.ensure_future(consumer._consumer.call(busy.wait))
    try:
        await asyncio.wait_for(consumer._committer.commit({partition: work}, refresh=True), timeout=30)
        committed = await asyncio.wait_for(consumer._committed_offsets([partition]), timeout=30)
        assert committed[partition][0] == 3
    finally:
        busy.set()
        await held
        await consumer.close()
