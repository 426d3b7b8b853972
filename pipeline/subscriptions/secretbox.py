"""Secrets and credentials encrypted at rest in the subscriptions topic (Fernet: AES-128-CBC + HMAC).

The key comes from PIPELINE_SECRETS_KEY; without it, a key file is made once under the data
directory, so a local stack works out of the box and every local process shares the key.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from pipeline.config import Settings
from pipeline.devstack.local_files import made_once
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
    return SecretBox(made_once(settings.data_dir / "secrets.key", Fernet.generate_key))
