"""The dispatcher's consumer of the endpoint topics it owns.

Ownership comes from the shards (shards.py): the endpoints of the shards this dispatcher holds
are assigned to its consumer by hand, so a new or deleted endpoint changes one dispatcher's
assignment and stops nobody. Each partition gets a PartitionWork; one with too much in flight is
paused (its backlog waits in Kafka) and resumed when it drains, and one quiet for a while is
parked (parking.py): taken out of the consumer's assignment until its doorbell rings. Offsets are
committed only up to finished messages, after the attempt records are flushed to Kafka
(commits.py); once a record could not be written, nothing is committed again (not even on
shutdown or a handover), so Kafka redelivers every task since the last good commit.

Work per round is kept to the partitions that have messages in hand (`_busy`), so ten thousand
quiet endpoints cost nothing between their events. Nor do they cost librdkafka much: parked
partitions are unassigned, not paused. Assigning, pausing and resuming keep the GIL while they run
(see pipeline.metrics.loop_lag), and they took longer the more partitions were assigned, paused
ones included: with ten thousand endpoints assigned, adding one held the whole dispatcher 13 ms.
An unassigned partition still costs librdkafka (it keeps every topic it was ever assigned), so
once the consumer knows many more topics than it has assigned it is renewed: a new one is assigned
what is fetched now (_renew).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from pipeline.config import Settings
from pipeline.dispatcher.commits import Committer
from pipeline.dispatcher.deliverer import Deliverer
from pipeline.dispatcher.directory import EndpointDirectory
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.parking import Parking
from pipeline.dispatcher.partition import PartitionWork
from pipeline.dispatcher.progress import CommitMetadata, endpoint_states, progress_of
from pipeline.dispatcher.records import PartitionId, TaskRecord
from pipeline.dispatcher.shards import ShardMembership
from pipeline.errors import ServiceError
from pipeline.kafka.admin import admin_client
from pipeline.kafka.lost import LossReporter, log_starts, lost_ranges
from pipeline.kafka.offsets import end_offsets, list_offsets
from pipeline.kafka.retention import align_configs, backlog_config
from pipeline.kafka.threaded import ThreadedConsumer
from pipeline.laps import Laps
from pipeline.metrics.dispatcher import DispatcherMetrics
from pipeline.subscriptions.backlog import dispatcher_group
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)
COMMIT_INTERVAL_S = 0.5
REFRESH_INTERVAL_S = 3600.0
REVOKE_GRACE_S = 2.0
POLL_S = 0.05  # how long a call such as pause or commit may wait behind an idle poll
MAX_BATCH = 2000
COMMITTED_TRIES = 5
END_OFFSETS_TIMEOUT_S = 10.0
LOOK_AGAIN_S = 0.2
PARK_EVERY_S = 1.0
ASSIGN_CHUNK = 250  # partitions assigned in one call on the consumer's thread
SLOW_GAIN_S = 1.0  # a gain that took longer logs how long each step took
ALIGN_EVERY_S = 5.0


class EndpointConsumer:
    def __init__(self, settings: Settings, deliverer: Deliverer, outbox: Outbox, client: ThreadedConsumer | None = None,
                 metrics: DispatcherMetrics | None = None):
        self.settings = settings
        self.deliverer = deliverer
        self.outbox = outbox
        self.max_in_flight = settings.max_in_flight_per_partition
        self.max_uncommitted = settings.max_uncommitted_per_partition
        self.names = TopicNames.from_settings(settings)
        self.group_id = dispatcher_group(settings)
        self._admin = admin_client(settings.kafka_bootstrap_servers)
        self._consumer = client or ThreadedConsumer({
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": self.group_id,  # only where offsets are committed: partitions are assigned by hand
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # a new endpoint topic's first tasks must not be skipped
            # A fetch answers as soon as anything arrives; the wait only bounds how long a partition
            # just assigned or unparked waits to join the fetch in progress.
            "fetch.wait.max.ms": 100,
            "queued.max.messages.kbytes": 16 * 1024,
        }, name="dispatcher-endpoints", observe=metrics.consumer_call if metrics else None)
        # Reads the committed offsets of the partitions gained, on its own thread: the fetching
        # consumer's is busy with polls and pauses, and a new endpoint's gain waited for it.
        self._offsets_reader = client or self._offsets_client("dispatcher-offsets")
        # Commits on a thread of their own too: a synchronous commit held the fetching consumer's
        # thread for a round trip to a busy broker every half second, and fetches, pauses and the
        # assignments of new endpoints waited behind it. The group has no members (partitions are
        # assigned by hand), so any consumer of it may commit its offsets.
        self._commits_client = client or self._offsets_client("dispatcher-commits")
        self._committer = Committer(self._commits_client, outbox, self._metadata)
        self._work: dict[PartitionId, PartitionWork] = {}
        self._busy: set[PartitionId] = set()  # have messages in hand, or offsets not yet committed
        self._paused: set[PartitionId] = set()
        self._unassigned: set[PartitionId] = set()  # parked: owned, but out of the consumer's assignment
        self._known_topics: set[str] = set()  # ever assigned to the consumer: it keeps them all
        self._doorbells_next: dict[int, int] = {}  # the doorbells' partitions: the next offset to read
        # Paused at some time by this consumer: librdkafka keeps a pause through an unassign, so
        # only these can be paused when assigned again. Resuming the others would be a call that
        # keeps the GIL (pipeline.metrics.loop_lag) for nothing, once per new endpoint.
        self._ever_paused: set[PartitionId] = set()
        self._full: set[PartitionId] = set()  # paused for backpressure
        self._parking = Parking(settings.dispatcher_park_idle_s)
        self._flow_changed: set[PartitionId] = set()  # may need pausing or resuming
        self._pausing = asyncio.Lock()  # one pause or resume at a time, each seeing what the last one did
        self._shards: set[int] = set()
        self._owned: dict[str, list[PartitionId]] = {}  # subscription id: its partitions assigned here
        self._changes: asyncio.Queue[set[str]] = asyncio.Queue()
        self._missing: dict[str, int] = {}  # subscription id: how often its topic was not found
        self._assignment_lock = asyncio.Lock()  # one gain or release at a time
        # A commit waits for the attempt records to be acknowledged: a release (which commits what
        # it lets go of) waits for it, but a gain, whose first tasks are on their way, does not.
        self._committing = asyncio.Lock()
        self.directory: EndpointDirectory | None = None
        self._losses = LossReporter(settings, "dispatcher", tenant_of=self._tenant_of)
        self._aligned: set[str] = set()  # endpoint topics whose retention was looked at
        self._to_align: set[str] = set()  # gained since the last look

    async def run(self, stopping: asyncio.Event) -> None:
        shards = await self._partition_count(self.names.dispatcher_shards)
        self.directory = EndpointDirectory(self.deliverer.table, self.names, self._admin, shards)
        await self._listen_for_doorbells()
        self.deliverer.table.on_change(self._changes.put_nowait)
        membership = ShardMembership(self.settings, gained=self._gain_shards, released=self._release_shards,
                                     lost=self._lose_shards)
        leaving = asyncio.Event()
        group = asyncio.create_task(membership.run(leaving))
        helpers = [group, *(asyncio.create_task(task) for task in
                            (self._follow_subscriptions(), self._watch_parked(), self._keep_committing(),
                             self._keep_aligning()))]
        try:
            await self._fetch(stopping, helpers)
        finally:
            leaving.set()  # leaving the group releases every shard, committing what finished
            await asyncio.gather(group, return_exceptions=True)
            for helper in helpers[1:]:
                helper.cancel()
            await asyncio.gather(*helpers[1:], return_exceptions=True)
            await self.close()

    def _offsets_client(self, name: str) -> ThreadedConsumer:
        """A consumer of the dispatchers' group that never fetches: it reads or commits offsets."""
        return ThreadedConsumer({"bootstrap.servers": self.settings.kafka_bootstrap_servers, "group.id": self.group_id,
                                 "enable.auto.commit": False}, name=name)

    async def close(self) -> None:
        """Closes its Kafka consumers: the fetching one, the committed offsets' reader and the committer's."""
        await self._consumer.close()
        for client in (self._offsets_reader, self._commits_client):
            if client is not self._consumer:
                await client.close()

    def owned_subscriptions(self) -> list[str]:
        """The subscriptions whose endpoint partitions this dispatcher fetches now."""
        return list(self._owned)

    def parked_subscriptions(self) -> set[str]:
        """The owned subscriptions whose every partition is parked: caught up, nothing pending."""
        parked = self._parking.parked
        return {s for s, partitions in self._owned.items() if all(p in parked for p in partitions)}

    def partition_counts(self) -> tuple[int, int]:
        """How many endpoint partitions this dispatcher owns, and how many of them are parked."""
        return len(self._work), len(self._parking.parked)

    async def _partition_count(self, topic: str) -> int:
        metadata = await asyncio.to_thread(self._admin.list_topics, topic=topic, timeout=30)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise ServiceError(f"the topic {topic} is missing: create the core topics first")
        return len(found.partitions)

    async def _listen_for_doorbells(self) -> None:
        """Every doorbell rung from now on: they wake parked partitions (parking.py), whoever owns them.

        From the end offsets read here, before any shard is gained, not from OFFSET_END: librdkafka
        resolves that only once it knows the partitions' leader, up to a second later, and skipped
        a doorbell rung in between. The partition whose first task it announced had been parked at
        once with its shard, and waited for the sweep."""
        topic = self.names.dispatcher_wakeups
        places = [(topic, p) for p in range(await self._partition_count(topic))]
        ends = await asyncio.to_thread(end_offsets, self._admin, places, END_OFFSETS_TIMEOUT_S)
        self._doorbells_next = {p: ends[topic, p] for _, p in places}
        await self._consumer.call(self._consumer.raw.incremental_assign, self._doorbell_places())

    def _doorbell_places(self) -> list[TopicPartition]:
        return [TopicPartition(self.names.dispatcher_wakeups, p, offset) for p, offset in self._doorbells_next.items()]

    async def _fetch(self, stopping: asyncio.Event, helpers: list[asyncio.Task[None]]) -> None:
        while not stopping.is_set():
            for helper in helpers:
                if helper.done():
                    helper.result()  # a helper that died takes the dispatcher down: better than drifting
                    raise ServiceError("a dispatcher task stopped unexpectedly")
            self._submit(await self._consumer.take(MAX_BATCH, POLL_S))
            await self._apply_backpressure()
            if self._renewal_due():
                await self._renew()

    async def _keep_committing(self) -> None:
        """Beside the fetching, not in its way: a commit waits for the attempt records to be
        acknowledged, and tasks arriving meanwhile must not wait with it."""
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + REFRESH_INTERVAL_S
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            async with self._committing:  # a partition being let go of is committed by its release
                await self._commit_busy()
                if loop.time() >= next_refresh:
                    await self._committer.commit(self._committer.stale(self._work), refresh=True)
                    next_refresh = loop.time() + REFRESH_INTERVAL_S

    def _submit(self, messages: list) -> None:  # type: ignore[type-arg]
        now = time.monotonic()
        for message in messages:
            if message.error() is not None:
                log.warning("fetching endpoint tasks: %s", message.error())
                continue
            if message.topic() == self.names.dispatcher_wakeups:
                self._doorbells_next[message.partition()] = message.offset() + 1
                self._rung(message.key(), now)
                continue
            record = TaskRecord.of(message)
            work = self._work.get(record.position)
            if work is None or record.position in self.deliverer.letting_go:
                continue  # let go of meanwhile, or being let go of: its new owner delivers it
            if self._parking.fetched(record.position, record.offset, now):
                self._flow_changed.add(record.position)
            self._busy.add(record.position)
            work.submit(record)

    def _rung(self, key: bytes | None, now: float) -> None:
        partitions = self._owned.get(key.decode(), ()) if key else ()
        self._flow_changed.update(self._parking.rung(partitions, now))

    async def _commit_busy(self) -> None:
        busy = {partition: self._work[partition] for partition in self._busy if partition in self._work}
        await self._committer.commit(busy)
        self._busy -= {p for p, work in busy.items() if self._committer.is_current(p, work)}

    def _metadata(self, partition: PartitionId, offset: int) -> str:
        state = self.deliverer.endpoint_state(self.names.subscription_of(partition.topic))
        return CommitMetadata(self.deliverer.progress.at(partition, offset), state).encode()

    # --- which partitions are ours -------------------------------------------------------------

    def _shard(self, subscription_id: str) -> int:
        assert self.directory is not None
        return self.directory.shard(subscription_id)

    async def _gain_shards(self, shards: set[int]) -> None:
        self._shards |= shards
        assert self.directory is not None
        await self._gain(self.directory.subscriptions_in(shards), park_caught_up=True)

    async def _release_shards(self, shards: set[int]) -> None:
        self._shards -= shards
        await self._release_where(lambda subscription_id: self._shard(subscription_id) in shards, commit=True)

    async def _lose_shards(self, shards: set[int]) -> None:
        """Another dispatcher may own them already: stop without committing over its progress.

        Nothing more fetched from them is delivered from now on, though letting them go waits for
        the commit under way (until Kafka acknowledges the attempt records, for as long as a broker
        is away): what this dispatcher would deliver meanwhile, their new owner delivers again from
        their last commit."""
        self._shards -= shards

        def lost(subscription_id: str) -> bool:
            return self._shard(subscription_id) in shards

        self.deliverer.letting_go.update(p for p in self._work if lost(self.names.subscription_of(p.topic)))
        await self._release_where(lost, commit=False)

    async def _follow_subscriptions(self) -> None:
        """New subscriptions in our shards are fetched at once; deleted ones are let go."""
        table = self.deliverer.table
        while True:
            changed = await self._changes.get()
            while not self._changes.empty():
                changed |= self._changes.get_nowait()
            ours = {s for s in changed if self._shard(s) in self._shards}
            await self._gain(sorted(s for s in ours if table.get(s) is not None and s not in self._owned))
            gone = {s for s in ours if table.get(s) is None and s in self._owned}
            if gone:
                await self._release_where(gone.__contains__, commit=True)

    async def _gain(self, subscription_ids: list[str], park_caught_up: bool = False) -> None:
        """Fetches these subscriptions' partitions from where their last owner committed.

        park_caught_up: those with nothing left to fetch start parked; for a shard gained (a start,
        a handover), where a first fetch naming thousands of idle partitions kept the broker busy for
        seconds. A new subscription's partition is fetched at once: its first task is on its way."""
        if not subscription_ids:
            return
        assert self.directory is not None
        laps = Laps()
        async with self._assignment_lock:
            laps.lap("waiting for the lock")
            found = await self.directory.partitions_of(subscription_ids)
            laps.lap("topics")
            self._look_again_later(set(subscription_ids) - {self.names.subscription_of(p.topic) for p in found})
            for partition in found:
                self._missing.pop(self.names.subscription_of(partition.topic), None)
            partitions = [p for p in found if p not in self._work]
            if not partitions:
                return
            committed = await self._read_committed(partitions)
            laps.lap("committed offsets")
            starts = await self._past_losses(committed)
            laps.lap("log starts")
            self._to_align |= {p.topic for p in committed} - self._aligned
            now = time.monotonic()
            for partition, (offset, metadata) in committed.items():
                subscription_id = self.names.subscription_of(partition.topic)
                start_offset = starts.get(partition, offset)
                self._work[partition] = PartitionWork(self.deliverer.deliver, start_offset=start_offset,
                                                      policy=lambda s=subscription_id: self.deliverer.lane_policy(s))
                self._owned.setdefault(subscription_id, []).append(partition)
                self._parking.started(partition, max(start_offset, 0), now)
                if offset >= 0:
                    self._committer.knows(partition, offset, metadata)
            parked = []
            if park_caught_up:
                parked = await self._park_caught_up(list(committed), quiet_since=now)
                laps.lap("end offsets")
            calls_s = await self._assign([TopicPartition(p.topic, p.partition, starts.get(p, offset) if offset >= 0
                                                         else OFFSET_BEGINNING) for p, (offset, _) in committed.items()])
            laps.lap("assigning", note=f"{calls_s:.1f} of it the calls, the rest waiting for the consumer's thread")
        log.info("dispatching %d more endpoint partitions (%d in all)%s%s", len(partitions), len(self._work),
                 f", {len(parked)} of them caught up and parked at once" if park_caught_up else "",
                 f" after {laps}" if laps.total_s >= SLOW_GAIN_S else "")

    async def _park_caught_up(self, partitions: list[PartitionId], quiet_since: float) -> list[PartitionId]:
        """Parks those with nothing left to fetch (their end offsets are looked at) and nothing new
        since quiet_since: one rung meanwhile is not parked (see Parking.park). The ones parked."""
        return self._parking.park(partitions, await asyncio.to_thread(self._end_offsets, partitions), quiet_since)

    async def _assign(self, start: list[TopicPartition]) -> float:
        """Assigns the partitions gained that are not parked; the parked ones are left unassigned.

        librdkafka keeps a partition paused through an unassign and a new assign, so one paused
        here before is resumed as it is assigned (one never paused here is not: there is nothing to
        resume). Under the pausing lock, and the parked ones read inside it: a doorbell that wakes
        one meanwhile then assigns it. How long the calls took on the consumer's thread, not
        counting the wait for their turn there.

        ASSIGN_CHUNK partitions a call: the calls hold the consumer's thread, and a dispatcher
        taking over 5,043 partitions of a dead one held it 13.6 s in one call, while its own
        endpoints, fetched on that thread, waited. Between chunks, its fetches get their turn."""
        took_s, left = 0.0, iter(start)
        while True:
            async with self._pausing:
                chunk = self._not_parked(left, ASSIGN_CHUNK)
                if not chunk:
                    return took_s
                took_s += await self._assign_now(chunk)

    def _not_parked(self, partitions: Iterator[TopicPartition], most: int) -> list[TopicPartition]:
        """The next of them not parked, up to most; the parked ones passed on the way are left
        unassigned. A handover of 5,010 partitions, 4,880 of them parked, had made 21 calls, each
        waiting its turn on the consumer's thread: 4.8 s in all."""
        chunk: list[TopicPartition] = []
        for tp in partitions:
            partition = PartitionId(tp.topic, tp.partition)
            if partition in self._parking.parked:
                self._unassigned.add(partition)
                continue
            chunk.append(tp)
            if len(chunk) == most:
                break
        return chunk

    async def _assign_now(self, start: list[TopicPartition]) -> float:
        """Assigns them, resuming at once those paused here before. Under the pausing lock."""
        if not start:
            return 0.0
        to_resume = [TopicPartition(tp.topic, tp.partition) for tp in start
                     if PartitionId(tp.topic, tp.partition) in self._ever_paused]
        self._known_topics.update(tp.topic for tp in start)
        return await self._consumer.call(_assign_at, self._consumer.raw, start, [], to_resume)

    def _where_fetching_goes_on(self, partitions: Iterable[PartitionId]) -> list[TopicPartition]:
        """Each partition at the next offset not yet handed over: where a woken or renewed one starts."""
        return [TopicPartition(*p, self._parking.next_offset(p)) for p in partitions]

    def _renewal_due(self) -> bool:
        """Not while a gain or a release is under way: a renewal between two chunks of a gain
        would assign the chunks still to come, and the gain would assign them again."""
        assigned = len(self._work) - len(self._unassigned)  # partitions: as many as topics, or more
        return (len(self._known_topics) - assigned > self.settings.dispatcher_renew_after_topics
                and not self._assignment_lock.locked())

    async def _renew(self) -> None:
        """A new consumer in place of one that knows many more topics than it has assigned: the
        endpoints parked or let go of since it was made. librdkafka keeps every topic a consumer was
        ever assigned, finds a topic by comparing it with each of them, and its threads go through
        all of their partitions; with 8,000 unassigned, an idle consumer used 20 to 50% of a core.
        The new one fetches each partition from the next offset the old one had not handed over,
        and the doorbells likewise."""
        async with self._assignment_lock, self._pausing:
            known = len(self._known_topics)
            assigned = self._where_fetching_goes_on(p for p in self._work if p not in self._unassigned)
            await self._consumer.renew()
            self._known_topics = {tp.topic for tp in assigned}
            self._ever_paused = set(self._paused)
            took_s = await self._consumer.call(_assign_at, self._consumer.raw, [*self._doorbell_places(), *assigned],
                                               [TopicPartition(*p) for p in self._paused], [])
        log.info("renewed the endpoint consumer, which knew %d topics: %d partitions assigned to the new one in %.2f s",
                 known, len(assigned), took_s)

    def _look_again_later(self, subscription_ids: set[str]) -> None:
        """A topic the broker's metadata does not show yet (it trails topic creation by a moment);
        one still missing after many looks is looked for less often."""
        for subscription_id in subscription_ids:
            tries = self._missing[subscription_id] = self._missing.get(subscription_id, 0) + 1
            if tries == 50:
                log.warning("the endpoint topic of subscription %s is missing; looking for it every %.0f s",
                            subscription_id, LOOK_AGAIN_S * 50)
            delay = LOOK_AGAIN_S if tries < 50 else LOOK_AGAIN_S * 50
            asyncio.get_running_loop().call_later(delay, self._changes.put_nowait, {subscription_id})

    async def _read_committed(self, partitions: list[PartitionId]) -> dict[PartitionId, tuple[int, str]]:
        """Where the previous owners left these partitions: the offset, and the retry progress and
        endpoint state committed beside it, which this dispatcher carries on with."""
        committed = await self._committed_offsets(partitions)
        entries = {p: _Committed(offset, metadata) for p, (offset, metadata) in committed.items()}
        progress = progress_of(entries)
        if progress:
            log.info("carrying on the retries of %d tasks where the previous owners left them", len(progress))
        self.deliverer.progress.learn(progress)
        for subscription_id, state in endpoint_states(entries, self.names.subscription_of).items():
            self.deliverer.learn_endpoint_state(subscription_id, state)
        return committed

    async def _keep_aligning(self) -> None:
        """Gives the topics gained the backlog's retention, if made before it. Beside the gains,
        not in them: describing the configs of a new subscription's topic took longer than the
        rest of its gain, and its first event waited for it."""
        while True:
            await asyncio.sleep(ALIGN_EVERY_S)
            await self._align_gained()

    async def _align_gained(self) -> None:
        topics, self._to_align = self._to_align, set()
        if topics:
            await asyncio.to_thread(align_configs, self._admin, dict.fromkeys(topics, backlog_config(self.settings)))
            self._aligned |= topics

    async def _past_losses(self, committed: dict[PartitionId, tuple[int, str]]) -> dict[PartitionId, int]:
        """Partitions whose committed offset Kafka deleted: the loss reported, where each starts
        instead (its log start)."""
        offsets = {(p.topic, p.partition): offset for p, (offset, _) in committed.items() if offset >= 0}
        if not offsets:
            return {}
        lost = lost_ranges(offsets, await asyncio.to_thread(log_starts, self._admin, offsets))
        if lost:
            await asyncio.to_thread(self._losses.report, lost)
        return {PartitionId(r.topic, r.partition): r.last_offset + 1 for r in lost}

    def _tenant_of(self, topic: str) -> str:
        subscription = self.deliverer.table.get(self.names.subscription_of(topic))
        return subscription.tenant if subscription is not None else ""

    async def _committed_offsets(self, partitions: list[PartitionId]) -> dict[PartitionId, tuple[int, str]]:
        asked = [TopicPartition(p.topic, p.partition) for p in partitions]
        for attempt in range(1, COMMITTED_TRIES + 1):
            try:
                answered = await self._offsets_reader.call(self._offsets_reader.raw.committed, asked, timeout=30)
                return {PartitionId(tp.topic, tp.partition): (tp.offset, tp.metadata or "") for tp in answered}
            except KafkaException as exc:
                log.warning("reading committed offsets (try %d of %d): %s", attempt, COMMITTED_TRIES, exc)
                await asyncio.sleep(attempt)
        raise ServiceError(f"could not read the committed offsets of {len(partitions)} endpoint partitions")

    async def _release_where(self, matches: Callable[[str], bool], commit: bool) -> None:
        async with self._assignment_lock, self._committing:
            partitions = [p for p in self._work if matches(self.names.subscription_of(p.topic))]
            await self.release(partitions, grace_s=REVOKE_GRACE_S, commit=commit)

    async def release(self, partitions: list[PartitionId], grace_s: float, commit: bool = True) -> None:
        """Finishes what it can of partitions being let go, commits it, and forgets them."""
        works = {partition: self._work.pop(partition) for partition in partitions if partition in self._work}
        if not works:
            return
        self.deliverer.letting_go.update(works)  # retries waiting stop now; requests in flight get grace_s
        try:
            await asyncio.gather(*(work.close(grace_s) for work in works.values()))
        finally:
            self.deliverer.letting_go.difference_update(works)
        if commit and self.outbox.broken is None:
            with contextlib.suppress(ServiceError):  # the last flush found a lost record: logged below
                await self._committer.commit(works)
        async with self._pausing:  # a partition parked meanwhile is already unassigned
            assigned = [TopicPartition(p.topic, p.partition) for p in works if p not in self._unassigned]
            if assigned:
                with contextlib.suppress(KafkaException):
                    await self._consumer.call(self._consumer.raw.incremental_unassign, assigned)
            self._forget(list(works))
        if commit and self.outbox.broken is not None:
            log.error("not committing %d released partitions, since %s; Kafka redelivers them from the last commit",
                      len(works), self.outbox.broken)
        log.info("let go of %d endpoint partitions (%d left)", len(works), len(self._work))

    def _forget(self, partitions: list[PartitionId]) -> None:
        self.deliverer.letting_go.difference_update(partitions)
        self._committer.forget(partitions)
        self._parking.forget(partitions)
        self.deliverer.progress.forget(partitions)
        for partition in partitions:
            self._busy.discard(partition)
            self._paused.discard(partition)
            self._unassigned.discard(partition)
            self._full.discard(partition)
            self._flow_changed.discard(partition)
            subscription_id = self.names.subscription_of(partition.topic)
            self._owned[subscription_id].remove(partition)
            if not self._owned[subscription_id]:
                del self._owned[subscription_id]
                self.deliverer.forget_endpoint(subscription_id)

    # --- flow: backpressure and parking ---------------------------------------------------------

    async def _apply_backpressure(self) -> None:
        """Pauses a partition with too many lanes delivering, or too much finished behind a message
        still being retried (other keys pass it, but what a crash would redeliver must stay bounded)."""
        for partition in self._busy | self._full:
            work = self._work.get(partition)
            if work is None:
                continue
            if work.in_flight >= self.max_in_flight or work.uncommitted >= self.max_uncommitted:
                if partition not in self._full:
                    self._full.add(partition)
                    self._flow_changed.add(partition)
            elif work.in_flight < self.max_in_flight // 2 and work.uncommitted < self.max_uncommitted // 2:
                if partition in self._full:
                    self._full.discard(partition)
                    self._flow_changed.add(partition)
        await self._apply_pauses()

    async def _apply_pauses(self) -> None:
        """Unassigns the changed partitions now parked and assigns again those woken; pauses the
        full ones and resumes those no longer full.

        The fetching and the parking both call this. An unassign waits behind a poll on the
        consumer's thread, and a doorbell that poll brings must wake the partition being parked: so
        the second call waits for the first to finish and sees the partition among the unassigned."""
        async with self._pausing:
            await self._apply_pauses_now()

    async def _apply_pauses_now(self) -> None:
        if not self._flow_changed:
            return
        changed, self._flow_changed = self._flow_changed, set()
        owned = {p for p in changed if p in self._work}
        parked = owned & self._parking.parked
        park, wake = parked - self._unassigned, (owned - parked) & self._unassigned
        try:
            if park:
                await self._consumer.call(self._consumer.raw.incremental_unassign, [TopicPartition(*p) for p in park])
                self._unassigned |= park
                self._paused -= park  # librdkafka remembers; _assign_now resumes it when woken
            if wake:
                await self._assign_now(self._where_fetching_goes_on(wake))
                self._unassigned -= wake
            await self._pause_full(owned - self._unassigned)
        except KafkaException as exc:  # a partition let go of in between: nothing to pause any more
            log.info("parking, waking, pausing or resuming endpoint partitions: %s", exc)

    async def _pause_full(self, assigned: set[PartitionId]) -> None:
        pause = (assigned & self._full) - self._paused
        resume = (assigned & self._paused) - self._full
        if pause:
            self._ever_paused |= pause  # before the call: one that fails may have paused some
            await self._consumer.call(self._consumer.raw.pause, [TopicPartition(*p) for p in pause])
            self._paused |= pause
        if resume:
            await self._consumer.call(self._consumer.raw.resume, [TopicPartition(*p) for p in resume])
            self._paused -= resume

    async def _watch_parked(self) -> None:
        """Parks what has been quiet; now and then looks for growth a doorbell did not announce."""
        next_sweep = time.monotonic() + self.settings.dispatcher_parked_sweep_s
        while True:
            await asyncio.sleep(PARK_EVERY_S)
            now = time.monotonic()
            idle = self._parking.idle(now, busy=lambda p: p in self._busy or p not in self._work)
            if idle:
                parked = await self._park_caught_up(idle, quiet_since=now - self._parking.idle_s)
                self._flow_changed.update(parked)
                if parked:
                    log.info("parked %d quiet endpoint partitions (%d in all)", len(parked), len(self._parking.parked))
            if now >= next_sweep:
                await self._sweep(now)
                next_sweep = now + self.settings.dispatcher_parked_sweep_s
            await self._apply_pauses()

    async def _sweep(self, now: float) -> None:
        """Wakes the parked partitions that grew without a doorbell, and fetches again any partition
        paused or unassigned for nothing (neither full nor parked: a call that failed left it so),
        which nothing else would ever fetch."""
        parked = [p for p in self._parking.parked if p in self._work]
        if parked:
            # Not `self._flow_changed.update(...(await ...))`: that would add to the set a pause
            # applied during the await had already taken, and the woken partitions stay paused.
            ends = await asyncio.to_thread(self._end_offsets, parked)
            self._flow_changed.update(self._parking.grown(ends, now))
        async with self._pausing:
            stray = ((self._paused - self._full) | (self._unassigned - self._parking.parked)) - self._flow_changed
        if stray:
            log.warning("fetching again %d endpoint partitions paused or unassigned for no reason", len(stray))
            self._flow_changed.update(stray)

    def _end_offsets(self, partitions: list[PartitionId]) -> dict[PartitionId, int]:
        """A partition the broker did not answer for is left out: looked at again next time."""
        ends = list_offsets(self._admin, partitions, OffsetSpec.latest(), END_OFFSETS_TIMEOUT_S)[0]
        return {PartitionId(*place): offset for place, offset in ends.items()}


def _assign_at(raw: Consumer, start: list[TopicPartition], paused: list[TopicPartition],
               resumed: list[TopicPartition]) -> float:
    """On the consumer's thread, with no poll between: no fetch names the paused ones. The seconds taken."""
    started = time.monotonic()
    raw.incremental_assign(start)
    if paused:
        raw.pause(paused)
    if resumed:
        raw.resume(resumed)
    return time.monotonic() - started


class _Committed:
    """A committed offset with its metadata, as progress_of and endpoint_states read them."""
    __slots__ = ("offset", "metadata")

    def __init__(self, offset: int, metadata: str):
        self.offset = offset
        self.metadata = metadata
