"""Creating the same subscription twice is refused: every event would be delivered twice."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from pipeline.cli.duplicates import same_deliveries
from pipeline.cli.main import app
from pipeline.config import Settings
from pipeline.subscriptions.snapshot import read_snapshot
from pipeline.topics import TopicNames
from tests.conftest import stage_env
from tests.e2e.test_bad_input import end_offset

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOUR_STEP = ["subscriptions", "create", "--name", "demo", "--url", "http://127.0.0.1:8700/hook", "-e", "user.*",
             "--secret", SECRET]


def target(**changes):
    fields = {"tenant": "", "url": "https://example.test/h", "event_types": ["a.b", "c.*"], "sources": [],
              "filter": {"data.x": {"$gt": 1}, "type": "a.b"}}
    return SimpleNamespace(**(fields | changes))


def test_the_same_events_at_the_same_url_are_the_same_deliveries() -> None:
    reordered = target(event_types=["c.*", "a.b"], filter={"type": "a.b", "data.x": {"$gt": 1}})
    assert same_deliveries(target(), reordered)


@pytest.mark.parametrize("changes", [
    {"url": "https://example.test/other"}, {"tenant": "acme"}, {"event_types": ["a.b"]}, {"sources": ["device-1"]},
    {"filter": None}, {"filter": {"data.x": {"$gt": 2}, "type": "a.b"}},
])
def test_other_events_or_another_url_are_other_deliveries(changes: dict) -> None:
    assert not same_deliveries(target(), target(**changes))


@pytest.mark.integration
def test_running_the_tour_step_twice_is_refused_and_writes_nothing(settings: Settings) -> None:
    env = stage_env(settings)
    runner = CliRunner()
    first = runner.invoke(app, TOUR_STEP, env=env)
    assert first.exit_code == 0, first.output
    [created] = read_snapshot(settings)
    before = end_offset(settings, TopicNames.from_settings(settings).subscriptions)

    again = runner.invoke(app, [*TOUR_STEP[:3], "demo again"] + TOUR_STEP[4:], env=env)

    assert again.exit_code == 2
    assert created in again.output and "--force" in again.output
    assert end_offset(settings, TopicNames.from_settings(settings).subscriptions) == before


@pytest.mark.integration
def test_force_creates_a_second_one_anyway(settings: Settings) -> None:
    env = stage_env(settings)
    runner = CliRunner()
    assert runner.invoke(app, TOUR_STEP, env=env).exit_code == 0

    forced = runner.invoke(app, [*TOUR_STEP, "--force"], env=env)

    assert forced.exit_code == 0, forced.output
    assert len(read_snapshot(settings)) == 2
