"""Open attempts: an intent becomes a row only through the first record that closes it."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from pipeline.results.chunks import Batch
from pipeline.results.open_attempts import OpenAttempts

TP = TopicPartition("results", 0)


def intent(attempt_id: str, timeout_ms: int = 1_000) -> dict:
    return {"attempt_id": attempt_id, "outcome": "unknown", "intent": "open", "timeout_ms": timeout_ms}


def closing(attempt_id: str, outcome: str = "success") -> dict:
    return {"attempt_id": attempt_id, "outcome": outcome, "intent": "close", "timeout_ms": 0}


def test_an_outcome_closes_its_intent_and_is_the_one_row():
    ledger = OpenAttempts(grace_s=5)
    assert ledger.take(intent("a"), offset=3, timestamp_ms=10_000) is None
    assert ledger.floor(otherwise=9) == 3  # read again from the intent to learn it
    assert ledger.take(closing("a"), offset=4, timestamp_ms=10_001) == closing("a")
    assert ledger.opened == {} and ledger.floor(otherwise=9) == 9


def test_a_second_close_of_the_same_attempt_is_no_row():
    ledger = OpenAttempts(grace_s=5)
    ledger.take(intent("a"), 0, 10_000)
    assert ledger.take(closing("a", "unknown"), 1, 17_000) is not None  # the sink's unknown came first
    assert ledger.take(closing("a", "success"), 2, 17_500) is None  # the late outcome: counted already
    assert ledger.take(closing("a", "unknown"), 3, 18_000) is None  # an unknown written twice


def test_reading_again_to_learn_open_intents_closes_them_as_before():
    ledger = OpenAttempts(grace_s=5)
    for offset, record in enumerate([closing("older"), intent("a"), intent("b"), closing("a")]):
        ledger.relearn(record, offset, 10_000)
    assert set(ledger.opened) == {"b"} and ledger.floor(otherwise=9) == 2


def test_a_record_without_an_intent_is_a_row_as_it_is():
    ledger = OpenAttempts(grace_s=5)
    dead_lettered = {"attempt_id": "d", "outcome": "dead_lettered", "intent": ""}
    assert ledger.take(dead_lettered, 0, 10_000) == dead_lettered
    assert ledger.take({"attempt_id": "old", "outcome": "success"}, 1, 10_000) is not None  # before intents


def test_an_intent_is_overdue_after_its_timeout_and_the_grace_and_closes_as_unknown():
    ledger = OpenAttempts(grace_s=5)
    ledger.take(intent("a", timeout_ms=2_000), 0, timestamp_ms=10_000)
    assert ledger.overdue(now=16.9) == []
    (overdue,) = ledger.overdue(now=17.0)
    record = overdue.closing_unknown()
    assert (record["attempt_id"], record["outcome"], record["intent"]) == ("a", "unknown", "close")
    assert ledger.take(record, 1, 17_000) == record and ledger.opened == {}


def test_a_chunk_starts_from_its_partitions_open_attempts_and_leaves_them_untouched_until_stored():
    ledger = OpenAttempts(grace_s=5)
    ledger.take(intent("before"), 0, 10_000)
    records = {1: intent("a"), 2: closing("before"), 3: closing("a"), 4: intent("b")}
    batch = Batch(lambda message: records[message.offset], ledgers=lambda tp: ledger)
    for offset in records:
        assert batch.add(ConsumerRecord(topic=TP.topic, partition=TP.partition, offset=offset, timestamp=10_000,
                                        timestamp_type=0, key=None, value=b"x", checksum=None, serialized_key_size=0,
                                        serialized_value_size=1, headers=[]))
    chunk = batch.chunks[TP]
    assert [row["attempt_id"] for row in chunk.rows] == ["before", "a"]
    assert set(chunk.open.opened) == {"b"} and chunk.open.floor(chunk.end) == 4
    assert set(ledger.opened) == {"before"}  # a batch read again after a failure starts from here again
