"""API tokens: each is bound to one tenant, or to every tenant (`*`, an admin token), and to scopes.

Tokens come from PIPELINE_API_TOKENS, a JSON object from token to a grant:

    "acme"                                      every scope, tenant acme (as before scopes existed)
    "*"                                         every scope, every tenant: an admin token
    {"tenant": "acme", "scopes": ["publish"]}   only what the scopes allow

Scopes: `manage` (subscriptions, statistics, looking events up and resending them) and `publish`
(POST /v1/events). A token given as a plain string has both, so tokens made before scopes keep
everything they could do; a publish-only token is what a producer service should hold.

Without PIPELINE_API_TOKENS, an admin token is made once and kept under the data directory, so a
local stack is never open to all.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Header, HTTPException

from pipeline.config import Settings
from pipeline.devstack.local_files import made_once
from pipeline.errors import InvalidInput
from pipeline.subscriptions.model import Subscription

ADMIN = "*"
MANAGE = "manage"
PUBLISH = "publish"
SCOPES = frozenset({MANAGE, PUBLISH})
SETTING = "PIPELINE_API_TOKENS"


@dataclass(frozen=True)
class Grant:
    tenant: str  # "*" for an admin token
    scopes: frozenset[str] = SCOPES


@dataclass(frozen=True)
class Caller:
    tenant: str  # "*" for an admin token
    scopes: frozenset[str] = SCOPES

    @property
    def is_admin(self) -> bool:
        return self.tenant == ADMIN

    def sees(self, subscription: Subscription) -> bool:
        return self.is_admin or subscription.tenant == self.tenant


def load_tokens(settings: Settings) -> dict[str, Grant]:
    if settings.api_tokens:
        return parse_tokens(settings.api_tokens.get_secret_value())
    return {local_admin_token(settings.data_dir): Grant(ADMIN)}


def parse_tokens(text: str) -> dict[str, Grant]:
    """The grants of PIPELINE_API_TOKENS; a bad entry is named by its position, never by its token."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(SETTING, f"is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(SETTING, 'must be a JSON object {"token": "tenant", ...}')
    return {token: _grant(value, f"{SETTING}: entry {position + 1}")
            for position, (token, value) in enumerate(raw.items())}


def _grant(value: Any, where: str) -> Grant:
    if isinstance(value, str):
        return Grant(value)
    if not isinstance(value, dict) or not isinstance(value.get("tenant"), str) or set(value) - {"tenant", "scopes"}:
        raise InvalidInput(where, 'must be a tenant, "*", or {"tenant": "...", "scopes": ["manage", "publish"]}')
    scopes = value.get("scopes", sorted(SCOPES))
    if not isinstance(scopes, list) or not scopes or not set(scopes) <= SCOPES:
        raise InvalidInput(f"{where}: scopes", f"must be a non-empty list of {', '.join(sorted(SCOPES))}")
    return Grant(value["tenant"], frozenset(scopes))


def local_admin_token(data_dir: Path) -> str:
    return made_once(data_dir / "api-admin-token", lambda: f"adm_{secrets.token_urlsafe(24)}".encode()).decode()


def caller_from(tokens: dict[str, Grant], scope: str = MANAGE):
    """A FastAPI dependency: the caller named by the bearer token (or 401), holding the scope (or 403)."""

    async def caller(authorization: str | None = Header(None)) -> Caller:  # async: no thread hop per request
        scheme, _, token = (authorization or "").partition(" ")
        grant = tokens.get(token) if scheme.lower() == "bearer" else None
        if grant is None:
            raise HTTPException(401, "a valid API token is required: Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})
        if scope not in grant.scopes:
            raise HTTPException(403, f"this token lacks the {scope!r} scope")
        return Caller(grant.tenant, grant.scopes)

    return caller
