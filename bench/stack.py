"""The pipeline's stages as processes for a benchmark, their logs in files, their memory read from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings


@dataclass
class Stage:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def stage_environment(settings: Settings, **extra: str) -> dict[str, str]:
    return os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": settings.topic_prefix,
        "PIPELINE_DATA_DIR": str(settings.data_dir),
        "CLICKHOUSE_DSN": settings.resolved_clickhouse_dsn,
        "PIPELINE_RESULTS_PORT": str(settings.results_port),
        "PIPELINE_API_PORT": str(settings.api_port),
        "PIPELINE_ALLOWED_NETWORKS": "127.0.0.0/8",  # the receiver runs here; the guard stays on
        "PIPELINE_ALLOW_HTTP": "true",
    } | extra


def start(name: str, module: str, env: dict[str, str], log_dir: Path) -> Stage:
    """Output goes to a file of its own, so the benchmark's tables are not interleaved with log lines."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as output:
        process = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=output,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Stage(name, process, log)


def stop(stages: list[Stage], timeout_s: float = 20.0) -> None:
    for stage in stages:
        if stage.process.poll() is None:
            stage.process.send_signal(signal.SIGTERM)
    for stage in stages:
        try:
            stage.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            stage.process.kill()
            stage.process.wait()


def resident_mb(pid: int) -> float | None:
    """Resident memory of a process, from /proc (Linux); None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def crashed(stages: list[Stage]) -> list[str]:
    """Stages that exited on their own, with the tail of their log."""
    return [f"{stage.name} exited with {stage.process.returncode}: {stage.log.read_text(errors='replace')[-1500:]}"
            for stage in stages if stage.process.poll() is not None]


def start_profiles(stages: list[Stage], out_dir: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy (when installed) samples each stage until stopped, native frames included, so the
    benchmark can say where a stage's time goes; None of this runs unless asked for."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise RuntimeError("BENCH_PROFILE needs py-spy: .venv/bin/pip install py-spy")
    return [subprocess.Popen([str(spy), "record", "--native", "-r", "200", "-f", "raw", "-o",
                              str(out_dir / f"{stage.name}.profile"), "-p", str(stage.process.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for stage in stages]


def stop_profiles(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on the way out
    for spy in spies:
        spy.wait(60)


def hottest(profile: Path, count: int = 12) -> list[tuple[int, str]]:
    """The functions of the project and its libraries most often on the stack, from py-spy's raw output."""
    from collections import Counter

    seen: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack_text, _, samples = line.rpartition(" ")
        frames = {frame.split(" (")[0] for frame in stack_text.split(";")}
        for frame in frames:
            seen[frame] += int(samples)
    return [(samples, frame) for frame, samples in seen.most_common(count)]
