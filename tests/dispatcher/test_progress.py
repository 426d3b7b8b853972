"""Retry progress travels in the commit metadata of the offset it describes, and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from aiokafka import TopicPartition

from pipeline.dispatcher.progress import CommitMetadata, EndpointState, Progress, RetryProgress, endpoint_states, progress_of
from pipeline.dispatcher.records import PartitionId


@dataclass
class Record:
    topic: str
    partition: int
    offset: int


def test_progress_round_trips_through_metadata_and_other_metadata_is_not_progress() -> None:
    progress = Progress(attempt=4, due_at=1_800_000_000.25)
    assert Progress.parse(progress.metadata()) == progress
    assert Progress.parse("results-sink/v1 end=12") is None and Progress.parse("") is None and Progress.parse(None) is None


def test_only_the_task_at_the_committed_offset_has_its_progress_committed() -> None:
    progress = RetryProgress()
    head, behind = Record("endpoint.s", 0, 7), Record("endpoint.s", 0, 9)
    progress.waiting(head, Progress(2, 100.0))
    progress.waiting(behind, Progress(3, 200.0))
    partition = TopicPartition("endpoint.s", 0)
    assert progress.metadata(partition, 7) == Progress(2, 100.0).metadata()
    assert progress.metadata(partition, 8) == ""
    progress.finished(head)
    assert progress.metadata(partition, 7) == ""
    progress.forget([partition])
    assert progress.of(behind) is None


def test_progress_is_read_back_from_committed_offsets() -> None:
    partition = TopicPartition("endpoint.s", 1)
    committed = {partition: SimpleNamespace(offset=5, metadata=Progress(3, 50.0).metadata()),
                 TopicPartition("endpoint.s", 2): SimpleNamespace(offset=8, metadata="")}
    assert progress_of(committed) == {("endpoint.s", 1, 5): Progress(3, 50.0)}


def test_the_endpoint_state_travels_beside_the_progress_and_old_metadata_still_reads() -> None:
    state = EndpointState(streak_began=1_800_000_000.5, streak_failures=12, held_until=1_800_000_060.0)
    metadata = CommitMetadata(Progress(4, 1_800_000_001.0), state)
    assert CommitMetadata.parse(metadata.encode()) == metadata
    assert CommitMetadata.parse(CommitMetadata(endpoint=state).encode()) == CommitMetadata(None, state)
    assert CommitMetadata().encode() == ""  # nothing to carry: nothing committed beside the offset
    written_by_an_older_dispatcher = "dispatcher/v1 attempt=3 due=1800000000000"
    assert CommitMetadata.parse(written_by_an_older_dispatcher) == CommitMetadata(Progress(3, 1_800_000_000.0))


def test_partitions_of_one_endpoint_merge_into_the_longest_streak_and_latest_hold() -> None:
    one = EndpointState(streak_began=100.0, streak_failures=5, held_until=300.0)
    other = EndpointState(streak_began=150.0, streak_failures=2, held_until=400.0)
    assert one.merged(other) == EndpointState(100.0, 5, 400.0)
    assert EndpointState().merged(EndpointState()) == EndpointState()
    committed = {PartitionId("endpoint.s", 0): SimpleNamespace(offset=1, metadata=CommitMetadata(endpoint=one).encode()),
                 PartitionId("endpoint.s", 1): SimpleNamespace(offset=1, metadata=CommitMetadata(endpoint=other).encode()),
                 PartitionId("endpoint.t", 0): SimpleNamespace(offset=1, metadata="")}
    states = endpoint_states(committed, lambda topic: topic.removeprefix("endpoint."))
    assert states == {"s": EndpointState(100.0, 5, 400.0), "t": EndpointState()}
