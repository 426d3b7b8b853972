"""API tokens: each is bound to one tenant, or to every tenant (`*`, an admin token).

The admin API and the results service accept the same tokens and scope them the same way.
Tokens come from PIPELINE_API_TOKENS (JSON: {"token": "tenant" or "*"}). Without it, an admin
token is made once and kept under the data directory, so a local stack is never open to all,
and every local process (API, results service, CLI) finds the same one there.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.devstack.local_files import made_once
from pipeline.errors import InvalidInput, ServiceError

if TYPE_CHECKING:
    from pipeline.subscriptions.model import Subscription

ADMIN = "*"
TOKEN_REQUIRED = "a valid API token is required: Authorization: Bearer <token>"


@dataclass(frozen=True)
class Caller:
    tenant: str  # "*" for an admin token

    @property
    def is_admin(self) -> bool:
        return self.tenant == ADMIN

    def sees(self, subscription: Subscription) -> bool:
        return self.is_admin or subscription.tenant == self.tenant

    def scoped(self, query: Mapping[str, str]) -> dict[str, str]:
        """Statistics query parameters with a tenant token's tenant forced as the tenant filter."""
        if self.is_admin:
            return dict(query)
        if query.get("tenant", self.tenant) not in ("", self.tenant):
            raise InvalidInput("tenant", "a tenant token sees the statistics of its own tenant only")
        return dict(query) | {"tenant": self.tenant}


def load_tokens(settings: Settings) -> dict[str, str]:
    if settings.api_tokens:
        return json.loads(settings.api_tokens.get_secret_value())
    return {local_admin_token(settings.data_dir): ADMIN}


def local_admin_token(data_dir: Path) -> str:
    return made_once(data_dir / "api-admin-token", lambda: f"adm_{secrets.token_urlsafe(24)}".encode()).decode()


def caller_of(tokens: Mapping[str, str], authorization: str | None) -> Caller | None:
    """Who an `Authorization: Bearer <token>` header names, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    tenant = tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    return None if tenant is None else Caller(tenant)


def client_token(settings: Settings) -> str:
    """The token the CLI presents: PIPELINE_API_TOKEN, else an admin token of the configured ones
    (the local one when none are configured)."""
    if settings.api_token:
        return settings.api_token.get_secret_value()
    admin = [token for token, tenant in load_tokens(settings).items() if tenant == ADMIN]
    if not admin:
        raise ServiceError("PIPELINE_API_TOKENS holds no admin token: set PIPELINE_API_TOKEN to the token to use")
    return admin[0]
