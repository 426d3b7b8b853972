"""API tokens: each is bound to one tenant, or to every tenant (`*`, an admin token).

Tokens come from PIPELINE_API_TOKENS (JSON: {"token": "tenant" or "*"}). Without it, an admin
token is made once and kept under the data directory, so a local stack is never open to all.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import Header, HTTPException

from pipeline.config import Settings
from pipeline.devstack.local_files import made_once
from pipeline.subscriptions.model import Subscription

ADMIN = "*"


@dataclass(frozen=True)
class Caller:
    tenant: str  # "*" for an admin token

    @property
    def is_admin(self) -> bool:
        return self.tenant == ADMIN

    def sees(self, subscription: Subscription) -> bool:
        return self.is_admin or subscription.tenant == self.tenant


def load_tokens(settings: Settings) -> dict[str, str]:
    if settings.api_tokens:
        return json.loads(settings.api_tokens.get_secret_value())
    return {local_admin_token(settings.data_dir): ADMIN}


def local_admin_token(data_dir: Path) -> str:
    return made_once(data_dir / "api-admin-token", lambda: f"adm_{secrets.token_urlsafe(24)}".encode()).decode()


def caller_from(tokens: dict[str, str]):
    """A FastAPI dependency: the caller named by the bearer token, or 401."""

    def caller(authorization: str | None = Header(None)) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        tenant = tokens.get(token) if scheme.lower() == "bearer" else None
        if tenant is None:
            raise HTTPException(401, {"field": "authorization",
                                      "problem": "a valid API token is required: Authorization: Bearer <token>"},
                                headers={"WWW-Authenticate": "Bearer"})
        return Caller(tenant)

    return caller
