"""Secrets and credentials encrypted at rest in the subscriptions topic (Fernet: AES-128-CBC + HMAC).

The key comes from PIPELINE_SECRETS_KEY; without it, a key file is made once under the data
directory, so a local stack works out of the box and every local process shares the key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from pipeline.config import Settings
from pipeline.errors import ServiceError

SEALED_PREFIX = "fernet:"


class SecretBox:
    def __init__(self, key: bytes | str):
        self._fernet = Fernet(key)

    def seal(self, plaintext: str) -> str:
        return SEALED_PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(SEALED_PREFIX):
            return stored  # written before encryption at rest existed
        try:
            return self._fernet.decrypt(stored.removeprefix(SEALED_PREFIX).encode()).decode()
        except InvalidToken as exc:
            raise ServiceError("a subscription secret does not decrypt with this secrets key") from exc

    def seal_optional(self, plaintext: str | None) -> str | None:
        return None if plaintext is None else self.seal(plaintext)

    def open_optional(self, stored: str | None) -> str | None:
        return None if stored is None else self.open(stored)


def load_box(settings: Settings) -> SecretBox:
    if settings.secrets_key:
        return SecretBox(settings.secrets_key.get_secret_value())
    return SecretBox(_local_key(settings.data_dir / "secrets.key"))


def _local_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when two local processes start at once, exactly one writes the key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(Fernet.generate_key())
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    for _ in range(50):  # the writer may be between creating and writing the file
        key = path.read_bytes().strip()
        if key:
            return key
        import time

        time.sleep(0.02)
    raise ServiceError(f"the secrets key file {path} is empty")
