"""Values a local stack makes once and every local process shares: a key, a token."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import ServiceError


def made_once(path: Path, make: Callable[[], bytes]) -> bytes:
    """The file's content, making it first if needed; when processes race, exactly one writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_when_written(path)
    with os.fdopen(descriptor, "wb") as output:
        output.write(make())
    return path.read_bytes().strip()


def _read_when_written(path: Path) -> bytes:
    for _ in range(50):  # the writer may be between creating and writing the file
        content = path.read_bytes().strip()
        if content:
            return content
        time.sleep(0.02)
    raise ServiceError(f"{path} stayed empty")
