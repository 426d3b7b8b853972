"""Chunks and intents: an interrupted chunk is taken again with exactly its offsets."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from pipeline.results.chunks import Batch, Intent
from pipeline.results.intents import Resume, parse_resume, position_metadata

TP = TopicPartition("results", 2)


def message(offset: int, partition: int = 2, timestamp: int = 1_000) -> ConsumerRecord:
    return ConsumerRecord(topic="results", partition=partition, offset=offset, timestamp=timestamp + offset,
                          timestamp_type=0, key=None, value=b"x", checksum=None, serialized_key_size=0,
                          serialized_value_size=1, headers=[])


def batch() -> Batch:
    return Batch(lambda record: {"offset": record.offset})


def test_a_chunk_is_named_after_its_partition_offsets_and_first_timestamp():
    taken = batch()
    for offset in (5, 6, 7):
        assert taken.add(message(offset))

    chunk = taken.chunks[TP]
    assert (chunk.start, chunk.end, [row["offset"] for row in chunk.rows]) == (5, 8, [5, 6, 7])
    assert chunk.token(TP) == "results/2/5-8/1005"
    assert taken.complete


def test_an_expected_chunk_takes_exactly_its_range_and_refuses_what_follows():
    taken = batch()
    taken.expect(TP, Intent(start=5, end=8))

    assert taken.add(message(5)) and taken.add(message(6))
    assert not taken.complete  # offset 7 is still missing: storing now would use another token
    assert taken.add(message(7))
    assert not taken.add(message(8))  # the next chunk's: the sink seeks back to it

    assert taken.complete and taken.chunks[TP].token(TP) == "results/2/5-8/1005"


def test_an_expected_range_that_is_gone_completes_empty():
    taken = batch()
    taken.expect(TP, Intent(start=5, end=8))

    assert not taken.add(message(20))  # retention deleted 5..7

    chunk = taken.chunks[TP]
    assert taken.complete and chunk.rows == [] and (chunk.start, chunk.end) == (5, 8)


def test_where_storing_resumes_round_trips_through_commit_metadata():
    assert parse_resume(5, position_metadata(5, 8)) == Resume(5, Intent(start=5, end=8))
    assert parse_resume(8, position_metadata(8)) == Resume(8)  # a finished chunk
    # Open attempts keep the committed offset back: records from 3 on are read to learn them.
    assert parse_resume(3, position_metadata(5, 8)) == Resume(5, Intent(start=5, end=8))
    assert parse_resume(3, position_metadata(8)) == Resume(8)
    assert parse_resume(-1001, position_metadata(8)) is None  # nothing committed
    assert parse_resume(5, "something another tool wrote") == Resume(5)


def test_what_older_sinks_committed_is_still_understood():
    assert parse_resume(5, "results-sink/v1 end=8") == Resume(5, Intent(start=5, end=8))
    assert parse_resume(8, "results-sink/v1 end=8") == Resume(8)
    assert parse_resume(8, "") == Resume(8)
