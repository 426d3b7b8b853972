"""The pipeline's stages: the module that runs each, how to tell it is ready, where its pid is kept.

Light on imports: the `pipeline` command reads this to offer one command per stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class StageSpec:
    name: str
    module: str
    summary: str
    port_setting: str | None = None  # the setting naming the port it listens on, when it serves HTTP
    # Its consumer groups after the topic prefix; the first has members once the stage consumes.
    group_suffixes: tuple[str, ...] = ()

    def groups(self, topic_prefix: str) -> list[str]:
        return [f"{topic_prefix}{suffix}" for suffix in self.group_suffixes]


STAGES = (
    StageSpec(name="router", module="pipeline.router", group_suffixes=("router",),
              summary="Route events to the endpoint topics of the subscriptions that want them."),
    # "dispatchers" shares the shards; "dispatcher" only holds the endpoints' committed offsets.
    StageSpec(name="dispatcher", module="pipeline.dispatcher", group_suffixes=("dispatchers", "dispatcher", "retry-relay"),
              summary="Deliver the endpoint topics' tasks: signed requests, retries, attempt records."),
    StageSpec(name="results", module="pipeline.results", port_setting="results_port", group_suffixes=("results-sink",),
              summary="Write attempt records to ClickHouse and answer statistics queries."),
    StageSpec(name="api", module="pipeline.api", port_setting="api_port",
              summary="Serve the admin API and the dashboard."),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def stage_named(name: str) -> StageSpec:
    return next(stage for stage in STAGES if stage.name == name)


def pid_file(data_dir: Path, stage: str) -> Path:
    """Where `pipeline run` keeps a stage's process id, for `pipeline restart`."""
    return data_dir / "run" / f"{stage}.pid"


def running_pid(data_dir: Path, stage: StageSpec) -> int | None:
    """The pid `pipeline run` recorded for this stage, if that process still runs this stage's module."""
    try:
        pid = int(pid_file(data_dir, stage.name).read_text())
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ValueError):
        return None
    # A recorded pid may have been reused by another process since (a zombie's command line is empty).
    return pid if stage.module.encode() in command_line else None
