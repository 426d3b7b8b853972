"""`pipeline kafka console-producer|console-consumer`: Kafka's own tools, from the local broker's jars."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT, Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.devstack.kafka_tools import tool_command
from pipeline.kafka.admin import TopicSpec, admin_client, ensure_topics
from tests.conftest import stage_env


def broker_with_cached_jars(tmp_path: Path, version: str) -> KafkaBroker:
    broker = KafkaBroker(Settings(data_dir=tmp_path, kafka_version=version, kafka_bootstrap_servers="127.0.0.1:1"))
    broker.paths.jars.mkdir(parents=True)
    (broker.paths.jars / f"kafka_2.13-{version}.jar").touch()
    (tmp_path / "kafka" / f"tools-{version}").mkdir()
    (tmp_path / "kafka" / f"tools-{version}" / f"kafka-tools-{version}.jar").touch()
    return broker


@pytest.mark.parametrize(("version", "main_class"), [("4.1.1", "org.apache.kafka.tools.ConsoleProducer"),
                                                     ("3.9.1", "kafka.tools.ConsoleProducer")])
def test_the_producer_runs_the_versions_class_with_the_tools_jar(tmp_path: Path, version: str, main_class: str) -> None:
    broker = broker_with_cached_jars(tmp_path, version)

    command = tool_command(broker, "console-producer", ["--topic", "t"])

    classpath = command[command.index("-cp") + 1]
    assert classpath == f"{broker.paths.jars}/*:{tmp_path / 'kafka' / f'tools-{version}'}/*"
    assert command[command.index(main_class):] == [main_class, "--bootstrap-server", "127.0.0.1:1", "--topic", "t"]
    assert "tools-log4j" in command[1]  # warnings to stderr: stdout is the tool's own


def test_a_bootstrap_server_given_is_kept(tmp_path: Path) -> None:
    command = tool_command(broker_with_cached_jars(tmp_path, "4.1.1"), "console-consumer",
                           ["--bootstrap-server", "127.0.0.1:2", "--topic", "t"])

    assert command.count("--bootstrap-server") == 1 and "127.0.0.1:2" in command


@pytest.mark.integration
@pytest.mark.skipif(not (shutil.which("java") and shutil.which("mvn")), reason="needs Java and Maven")
def test_what_the_console_producer_writes_the_console_consumer_reads(settings: Settings) -> None:
    topic = f"{settings.topic_prefix}console-{uuid.uuid4().hex[:6]}"
    ensure_topics(admin_client(settings.kafka_bootstrap_servers), [TopicSpec(name=topic, partitions=1)])
    env = stage_env(settings) | {"PIPELINE_DATA_DIR": str(PROJECT_ROOT / ".data")}  # jars fetched once, kept there
    pipeline = [sys.executable, "-m", "pipeline.cli.main", "kafka"]

    produced = subprocess.run([*pipeline, "console-producer", "--topic", topic, "--property", "parse.key=true"],
                              input="user-1\t{\"name\": \"Ada\"}\n", env=env, capture_output=True, text=True,
                              timeout=600)
    consumed = subprocess.run([*pipeline, "console-consumer", "--topic", topic, "--from-beginning", "--max-messages",
                               "1", "--property", "print.key=true"], env=env, capture_output=True, text=True,
                              timeout=120)

    assert produced.returncode == 0, produced.stdout + produced.stderr
    assert consumed.stdout == 'user-1\t{"name": "Ada"}\n', consumed.stderr
