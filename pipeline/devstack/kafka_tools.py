"""Kafka's own console producer and consumer, run from the local broker's jars.

The broker's jars hold every class the tools need but the tools themselves (the kafka-tools jar,
fetched once beside them, without its dependencies: they are the broker's).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from pipeline.devstack.kafka_broker import KafkaBroker, run_checked
from pipeline.errors import ServiceError

log = logging.getLogger(__name__)
# The tool's main class by Kafka major version: 3.9 still has its producer in the broker's jar.
TOOLS = {
    "console-producer": {3: "kafka.tools.ConsoleProducer", 4: "org.apache.kafka.tools.ConsoleProducer"},
    "console-consumer": {3: "org.apache.kafka.tools.consumer.ConsoleConsumer",
                         4: "org.apache.kafka.tools.consumer.ConsoleConsumer"},
}


def tool_command(broker: KafkaBroker, tool: str, args: list[str]) -> list[str]:
    """The java command line that runs one of TOOLS with these arguments, fetching jars first if needed."""
    main_class = TOOLS[tool][min(4, max(3, broker.major))]
    broker.fetch_jars()
    tools_jars = fetch_tools_jar(broker)
    if not any(arg.startswith("--bootstrap-server") for arg in args):
        args = ["--bootstrap-server", broker.bootstrap, *args]
    return broker.java_command(main_class, *args, extra_jars=tools_jars, logging_to="tools-")


def fetch_tools_jar(broker: KafkaBroker) -> Path:
    version = broker.settings.kafka_version
    target = broker.paths.root / f"tools-{version}"
    if any(target.glob("kafka-tools-*.jar")):
        return target
    if shutil.which("mvn") is None:
        raise ServiceError("Maven (mvn) is needed once to fetch Kafka's tools jar")
    staging = broker.paths.root / f"tools-{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log.info("fetching the kafka-tools %s jar with Maven (once)", version)
    run_checked(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact=org.apache.kafka:kafka-tools:{version}",
          f"-DoutputDirectory={staging}"], cwd=staging)
    staging.rename(target)  # atomic: a half-fetched directory is never taken as cached
    return target


def run_tool(broker: KafkaBroker, tool: str, args: list[str]) -> int:
    """Runs the tool in the foreground, sharing our terminal; its exit code."""
    try:
        return subprocess.call(tool_command(broker, tool, args))
    except KeyboardInterrupt:  # Ctrl-C stops the consumer: the usual way to end it
        return 0
