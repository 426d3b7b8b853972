"""Retry progress travels in the commit metadata of the offset it describes, and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from aiokafka import TopicPartition

from pipeline.dispatcher.progress import Progress, RetryProgress, progress_of


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
