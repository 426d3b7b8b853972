"""API tokens: each is bound to one tenant, or to every tenant (`*`, an admin token), and to scopes.

The admin API and the results service accept the same tokens and scope them the same way.
Tokens come from PIPELINE_API_TOKENS, a JSON object from token to a grant:

    "acme"                                      every scope, tenant acme (as before scopes existed)
    "*"                                         every scope, every tenant: an admin token
    {"tenant": "acme", "scopes": ["publish"]}   only what the scopes allow

Scopes: `manage` (subscriptions, statistics, looking events up and resending them) and `publish`
(POST /v1/events). A token given as a plain string has both, so tokens made before scopes keep
everything they could do; a publish-only token is what a producer service should hold.

Without PIPELINE_API_TOKENS, an admin token is made once and kept under the data directory, so a
local stack is never open to all, and every local process (API, results service, CLI) finds the
same one there.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.devstack.local_files import made_once
from pipeline.errors import InvalidInput, ServiceError

if TYPE_CHECKING:
    from pipeline.subscriptions.model import Subscription

ADMIN = "*"
MANAGE = "manage"
PUBLISH = "publish"
SCOPES = frozenset({MANAGE, PUBLISH})
SETTING = "PIPELINE_API_TOKENS"
TOKEN_REQUIRED = "a valid API token is required: Authorization: Bearer <token>"


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

    def scoped(self, query: Mapping[str, str]) -> dict[str, str]:
        """Statistics query parameters with a tenant token's tenant forced as the tenant filter."""
        if self.is_admin:
            return dict(query)
        if query.get("tenant", self.tenant) not in ("", self.tenant):
            raise InvalidInput("tenant", "a tenant token sees the statistics of its own tenant only")
        return dict(query) | {"tenant": self.tenant}


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


def as_grants(tokens: Mapping[str, Grant | str]) -> dict[str, Grant]:
    """Tokens given as {"token": "tenant"} (every scope) or as grants."""
    return {token: grant if isinstance(grant, Grant) else Grant(grant) for token, grant in tokens.items()}


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


def caller_of(tokens: Mapping[str, Grant], authorization: str | None) -> Caller | None:
    """Who an `Authorization: Bearer <token>` header names, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    grant = tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    return None if grant is None else Caller(grant.tenant, grant.scopes)


def client_token(settings: Settings) -> str:
    """The token the CLI presents: PIPELINE_API_TOKEN, else an admin token of the configured ones
    (the local one when none are configured)."""
    if settings.api_token:
        return settings.api_token.get_secret_value()
    admin = [token for token, grant in load_tokens(settings).items() if grant.tenant == ADMIN and MANAGE in grant.scopes]
    if not admin:
        raise ServiceError("PIPELINE_API_TOKENS holds no admin token: set PIPELINE_API_TOKEN to the token to use")
    return admin[0]
