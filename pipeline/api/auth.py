"""The admin API's authentication: the bearer token names the caller (see pipeline.tokens)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import Header, HTTPException

from pipeline.tokens import TOKEN_REQUIRED, Caller, caller_of


def caller_from(tokens: Mapping[str, str]) -> Callable[..., Caller]:
    """A FastAPI dependency: the caller named by the bearer token, or 401."""

    def caller(authorization: str | None = Header(None)) -> Caller:
        who = caller_of(tokens, authorization)
        if who is None:
            raise HTTPException(401, {"field": "authorization", "problem": TOKEN_REQUIRED},
                                headers={"WWW-Authenticate": "Bearer"})
        return who

    return caller
