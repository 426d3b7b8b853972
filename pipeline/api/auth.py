"""The admin API's authentication: the bearer token names the caller and its scopes (see pipeline.tokens)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import Header, HTTPException

from pipeline.tokens import MANAGE, TOKEN_REQUIRED, Caller, Grant, caller_of


def caller_from(tokens: Mapping[str, Grant], scope: str = MANAGE) -> Callable[..., Caller]:
    """A FastAPI dependency: the caller named by the bearer token (or 401), holding the scope (or 403)."""

    async def caller(authorization: str | None = Header(None)) -> Caller:  # async: no thread hop per request
        who = caller_of(tokens, authorization)
        if who is None:
            raise HTTPException(401, {"field": "authorization", "problem": TOKEN_REQUIRED},
                                headers={"WWW-Authenticate": "Bearer"})
        if scope not in who.scopes:
            raise HTTPException(403, {"field": "authorization", "problem": f"this token lacks the {scope!r} scope"})
        return who

    return caller
