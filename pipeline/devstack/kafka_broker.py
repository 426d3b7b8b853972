"""A real single-node KRaft Kafka broker, run as a local subprocess.

Its jars come from Maven Central through Maven and are cached under the data directory;
its logs and data live there too. Starting is idempotent: a broker that already answers
is reused, a stale pid file is cleaned up.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import PROJECT_ROOT, Settings
from pipeline.devstack.ports import free_port
from pipeline.errors import ServiceError
from pipeline.kafka.admin import broker_answers, wait_for_broker

log = logging.getLogger(__name__)
TEMPLATES = PROJECT_ROOT / "deploy" / "kafka"
LOGGING_3X = """<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>1.7.36</version></dependency>"""
LOGGING_4X = """<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>com.fasterxml.jackson.dataformat</groupId><artifactId>jackson-dataformat-yaml</artifactId><version>2.16.2</version></dependency>"""


@dataclass(frozen=True, kw_only=True)
class BrokerPaths:
    root: Path
    version: str

    @property
    def jars(self) -> Path:
        return self.root / f"jars-{self.version}"

    @property
    def log_dir(self) -> Path:
        return self.root / "data"

    @property
    def properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def output(self) -> Path:
        return self.root / "broker.log"


class KafkaBroker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.bootstrap = settings.kafka_bootstrap_servers
        self.port = int(self.bootstrap.rsplit(":", 1)[1])
        self.paths = BrokerPaths(root=settings.data_dir / "kafka", version=settings.kafka_version)

    @property
    def major(self) -> int:
        return int(self.settings.kafka_version.split(".")[0])

    def start(self, timeout_s: float = 90.0) -> bool:
        """Starts the broker unless one answers already; True when this call started it."""
        if broker_answers(self.bootstrap):
            log.info("reusing the Kafka broker already answering at %s", self.bootstrap)
            return False
        if self._running_pid() is None:
            self.fetch_jars()
            self._write_properties()
            self._format_storage()
            self._spawn()
        try:
            wait_for_broker(self.bootstrap, timeout_s)
        except ServiceError as exc:
            raise ServiceError(f"{exc}; see {self.paths.output}") from exc
        log.info("Kafka %s is ready at %s", self.settings.kafka_version, self.bootstrap)
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        pid = self._running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        if not _wait_for_exit(pid, timeout_s):
            os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, 5.0)
        self.paths.pid_file.unlink(missing_ok=True)

    def fetch_jars(self) -> Path:
        if self.paths.jars.is_dir() and any(self.paths.jars.glob("kafka_2.13-*.jar")):
            return self.paths.jars
        if shutil.which("mvn") is None:
            raise ServiceError("Maven (mvn) is needed once to fetch the Kafka jars; install it or set KAFKA_BOOTSTRAP_SERVERS")
        build = self.paths.root / f"pom-{self.settings.kafka_version}"
        build.mkdir(parents=True, exist_ok=True)
        pom = (TEMPLATES / "pom.xml").read_text()
        pom = pom.replace("@KAFKA_VERSION@", self.settings.kafka_version)
        pom = pom.replace("@LOGGING_DEPENDENCIES@", LOGGING_3X if self.major < 4 else LOGGING_4X)
        (build / "pom.xml").write_text(pom)
        staging = self.paths.root / f"jars-{self.settings.kafka_version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        log.info("fetching Kafka %s jars with Maven (once)", self.settings.kafka_version)
        run_checked(["mvn", "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
              f"-DoutputDirectory={staging}"], cwd=build)
        staging.rename(self.paths.jars)  # atomic: a half-fetched directory is never taken as cached
        return self.paths.jars

    def _write_properties(self) -> None:
        text = (TEMPLATES / "server.properties").read_text()
        text = text.replace("@PORT@", str(self.port))
        text = text.replace("@CONTROLLER_PORT@", str(self.settings.kafka_controller_port))
        text = text.replace("@LOG_DIR@", str(self.paths.log_dir))
        self.paths.properties.write_text(text)

    def _format_storage(self) -> None:
        if (self.paths.log_dir / "meta.properties").exists():
            return
        cluster_id = uuid.uuid4().hex[:22]
        run_checked(self.java_command("kafka.tools.StorageTool", "format", "-t", cluster_id,
                        "-c", str(self.paths.properties), "--ignore-formatted"))

    def _spawn(self) -> None:
        command = self.java_command(f"-Xmx{self.settings.kafka_heap}", "kafka.Kafka", str(self.paths.properties))
        with self.paths.output.open("ab") as output:
            # A session of its own: the broker outlives the command that started it, and Ctrl-C
            # in `make run` reaches it only through our orderly stop.
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, preexec_fn=_most_open_files)
        self.paths.pid_file.write_text(str(process.pid))

    def java_command(self, *args: str, extra_jars: Path | None = None, logging_to: str = "") -> list[str]:
        """`java` with the broker's jars (and those of extra_jars) on the class path; logging_to
        picks the logging configuration: "" for the broker's, "tools-" for one on stderr."""
        if self.major < 4:
            logging_flag = f"-Dlog4j.configuration=file:{TEMPLATES / f'{logging_to}log4j.properties'}"
        else:
            logging_flag = f"-Dlog4j2.configurationFile={TEMPLATES / f'{logging_to}log4j2.yaml'}"
        classpath = f"{self.paths.jars}/*" + (f":{extra_jars}/*" if extra_jars else "")
        return ["java", logging_flag, "-cp", classpath, *args]

    @property
    def pid(self) -> int | None:
        """The broker process's pid, if it was started from this data directory and runs."""
        return self._running_pid()

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.paths.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid):
            return pid
        self.paths.pid_file.unlink(missing_ok=True)  # stale: the broker died without us
        return None


@contextmanager
def own_broker(directory: Path, **settings: Any) -> Iterator[KafkaBroker]:
    """A broker for one user alone (a test that stops it, a benchmark), on free ports, its data
    under directory, stopped at the end. The shared broker at 127.0.0.1:19092 may be stopped, or
    formatted anew, by another command meanwhile: a client would then be told its topics do not
    exist. The jars are the ones fetched for the shared broker."""
    jars = KafkaBroker(Settings()).fetch_jars()
    broker = KafkaBroker(Settings(data_dir=directory, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
                                  kafka_controller_port=free_port(), **settings))
    broker.paths.root.mkdir(parents=True, exist_ok=True)
    broker.paths.jars.symlink_to(jars, target_is_directory=True)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


def _most_open_files() -> None:
    """Every partition's active segment keeps a file open: thousands of endpoint topics need the
    soft limit raised to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_checked(command: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"{' '.join(command[:3])} failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0): ask whether it has really exited.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False
