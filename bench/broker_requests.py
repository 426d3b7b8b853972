"""How many requests the broker served, by kind (Produce, Fetch, OffsetCommit...), read from its
own metrics over JMX: a benchmark divides them by the deliveries of a run.

On a small virtual machine every request costs the broker far more than its bytes: a thread of
its own wakes for it on each side, and here that came to most of a millisecond of CPU. So the
requests per delivery say where the broker's share of the CPU goes.

The JMX agent is started in the running broker with `jcmd` (a JDK tool), and the metrics are
read with Kafka's own JmxTool from the broker's jars and the tools jar. Without `jcmd`, or if
anything fails, `counts()` says why and returns nothing: the benchmark goes on without them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from pipeline.config import Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.devstack.kafka_tools import fetch_tools_jar
from pipeline.devstack.ports import free_port

JMX_TOOL = "org.apache.kafka.tools.JmxTool"
REQUESTS = "kafka.network:type=RequestMetrics,name=RequestsPerSec,*"
# One line per request kind and version, for example
# kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=10:Count=98402
COUNT_LINE = re.compile(r"request=(\w+),.*:Count=(\d+)")
# Counted under their own name too: FetchConsumer and FetchFollower are kinds of Fetch.
SUBKINDS = {"FetchConsumer", "FetchFollower"}


class BrokerRequests:
    def __init__(self, broker: KafkaBroker):
        self.broker = broker
        self.unavailable: str | None = None
        self._url: str | None = None

    def counts(self) -> dict[str, int]:
        """Requests served since the broker started, by kind; {} if they cannot be read."""
        if self.unavailable is not None:
            return {}
        try:
            output = self._run_tool()
        except subprocess.CalledProcessError as exc:
            self.unavailable = f"{exc.cmd[0]} {exc.cmd[-1] if exc.cmd[0] == 'jcmd' else ''} failed: " \
                               f"{(exc.stdout or '') + (exc.stderr or '')}"[-400:]
            return {}
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            self.unavailable = str(exc)
            return {}
        counts = parse_counts(output)
        if not counts:
            self.unavailable = f"JmxTool printed no request counts: {output[-300:]!r}"
        return counts

    def _run_tool(self) -> str:
        command = self.broker.java_command(JMX_TOOL, "--jmx-url", self._jmx_url(), "--object-name", REQUESTS,
                                           "--attributes", "Count", "--one-time", "true",
                                           "--report-format", "properties",
                                           extra_jars=self._tools_jar(), logging_to="tools-")
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout

    def _tools_jar(self) -> Path:
        """Kept beside the shared broker's jars, as own_broker keeps its jars: fetched once, not per run."""
        return fetch_tools_jar(KafkaBroker(Settings()))

    def _jmx_url(self) -> str:
        if self._url is None:
            pid = self.broker.pid
            if pid is None or shutil.which("jcmd") is None:
                raise RuntimeError("no running broker of ours, or no jcmd (a JDK tool) to open its JMX port")
            port = free_port()
            subprocess.run(["jcmd", str(pid), "ManagementAgent.start", f"jmxremote.port={port}",
                            # No password, so on loopback only (its RMI server on the same port).
                            f"jmxremote.rmi.port={port}", "jmxremote.host=127.0.0.1",
                            "jmxremote.authenticate=false", "jmxremote.ssl=false"],
                           capture_output=True, text=True, timeout=60, check=True)
            self._url = f"service:jmx:rmi:///jndi/rmi://127.0.0.1:{port}/jmxrmi"
        return self._url


def parse_counts(output: str) -> dict[str, int]:
    """JmxTool's lines summed over versions, by request kind."""
    counts: dict[str, int] = {}
    for match in COUNT_LINE.finditer(output):
        counts[match.group(1)] = counts.get(match.group(1), 0) + int(match.group(2))
    return counts


def per_delivery(before: dict[str, int], after: dict[str, int], deliveries: int) -> dict[str, float]:
    """Requests of each kind per delivery between two readings, the subkinds left out."""
    return {kind: (count - before.get(kind, 0)) / deliveries for kind, count in after.items()
            if kind not in SUBKINDS and count > before.get(kind, 0)}
