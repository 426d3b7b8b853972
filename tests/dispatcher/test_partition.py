"""Per-key lanes keep order per key, let other keys pass, and never commit past unfinished work."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipeline.dispatcher.partition import LanePolicy, PartitionWork
from tests.polling import until


@dataclass
class Record:
    offset: int
    key: bytes | None


async def test_a_blocked_key_holds_only_itself_and_the_commit() -> None:
    release = asyncio.Event()
    handled: list[int] = []

    async def handle(batch: list[Record]) -> None:
        (record,) = batch
        if record.offset == 1:
            await release.wait()  # a delivery being retried
        handled.append(record.offset)

    work = PartitionWork(handle)
    for offset, key in enumerate([b"a", b"b", b"a", b"b", b"c"]):
        work.submit(Record(offset, key))
    await until(lambda: len(handled) == 3)
    assert handled == [0, 2, 4]  # key b is held at offset 1; a and c went on
    assert work.committable() == 1  # nothing at or past the blocked offset is committed
    release.set()
    await until(lambda: len(handled) == 5)
    assert handled[3:] == [1, 3]  # b's messages in their order
    assert work.committable() == 5
    assert work.in_flight == 0


async def test_close_cancels_unfinished_work_which_stays_uncommitted() -> None:
    async def hang(batch: list[Record]) -> None:
        await asyncio.Event().wait()

    work = PartitionWork(hang)
    work.submit(Record(0, b"k"))
    await work.close(grace_s=0.05)
    assert work.committable() == 0  # the unfinished message itself is where a successor starts


async def test_an_unexpected_error_retries_the_same_message(monkeypatch) -> None:
    monkeypatch.setattr("pipeline.dispatcher.partition.UNEXPECTED_ERROR_PAUSE_S", 0.01)
    calls: list[int] = []

    async def flaky(batch: list[Record]) -> None:
        calls.extend(record.offset for record in batch)
        if len(calls) == 1:
            raise RuntimeError("bug")

    work = PartitionWork(flaky)
    work.submit(Record(0, b"k"))
    work.submit(Record(1, b"k"))
    await until(lambda: work.committable() == 2)
    assert calls == [0, 0, 1]


async def test_strict_ordering_is_one_lane_for_the_whole_partition() -> None:
    release, started = asyncio.Event(), asyncio.Event()
    calls: list[int] = []
    handled: list[int] = []

    async def handle(batch: list[Record]) -> None:
        calls.extend(record.offset for record in batch)
        if batch[0].offset == 0:
            started.set()
            await release.wait()
        handled.extend(record.offset for record in batch)

    work = PartitionWork(handle, policy=lambda: LanePolicy(ordering="strict"))
    for offset, key in enumerate([b"a", b"b", b"c"]):
        work.submit(Record(offset, key))
    await asyncio.wait_for(started.wait(), 5)
    for _ in range(10):
        await asyncio.sleep(0)  # let any other lane run, were there one
    assert calls == [0]  # b and c wait behind a, although their keys differ
    release.set()
    await until(lambda: handled == [0, 1, 2])


async def test_batches_gather_up_to_the_size_within_the_wait() -> None:
    batches: list[list[int]] = []

    async def handle(batch: list[Record]) -> None:
        batches.append([record.offset for record in batch])

    work = PartitionWork(handle, policy=lambda: LanePolicy(batch_max_events=3, batch_max_wait_s=0.2))
    for offset in range(7):
        work.submit(Record(offset, f"k{offset}".encode()))
    await until(lambda: sum(map(len, batches)) == 7)
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]
    assert work.committable() == 7


def _behind_a_slow_message(keys: list[bytes]) -> tuple[PartitionWork, asyncio.Event]:
    """Offset 0 is held (being retried) until the event is set; the others, with these keys, are not."""
    release = asyncio.Event()

    async def handle(batch: list[Record]) -> None:
        if batch[0].key == b"slow":
            await release.wait()

    work = PartitionWork(handle)
    for offset, key in enumerate([b"slow", *keys]):
        work.submit(Record(offset, key))
    return work, release


async def test_finished_messages_awaiting_a_commit_are_not_in_flight() -> None:
    """Backpressure counts work still to do: what is finished but not yet committed must not
    pause a partition until the next commit."""
    work, release = _behind_a_slow_message([f"k{offset}".encode() for offset in range(1, 11)])
    await until(lambda: work.in_flight == 1)  # ten finished behind the slow one, none committed
    assert work.committable() == 0
    release.set()
    await until(lambda: work.in_flight == 0)
    assert work.committable() == 11


async def test_what_finished_behind_a_retried_message_stays_uncommitted_and_counted() -> None:
    work, release = _behind_a_slow_message([b"fast"] * 5)
    await until(lambda: work.in_flight == 1)
    assert (work.uncommitted, work.committable()) == (6, 0)  # a crash now would redeliver all six
    release.set()
    await until(lambda: work.in_flight == 0)
    assert (work.committable(), work.uncommitted) == (6, 0)
