"""Every error the admin API answers has one shape: {"error": {"field": name or null, "problem": text}}.

Refused input (ours or FastAPI's: a body that is not JSON, a query parameter of the wrong type)
names the field and answers 422; an unknown subscription 404; a stale If-Match 412; a token
refused 401 or 403 (field `authorization`); a service that is down 503; anything else 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pipeline.errors import InvalidInput, PipelineError, error_body
from pipeline.subscriptions.commands import UnknownSubscription, VersionConflict

log = logging.getLogger(__name__)
REQUEST_PARTS = ("body", "query", "header", "path", "cookie")


def install_error_handlers(app: FastAPI, statuses: dict[type[InvalidInput], int] | None = None) -> None:
    """statuses: the answer for kinds of refusal other than plain bad input (422)."""
    known = {UnknownSubscription: 404, VersionConflict: 412, **(statuses or {})}

    async def _invalid_input(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidInput)
        status = next((code for kind, code in known.items() if isinstance(exc, kind)), 422)
        return error_response(status, exc.field, exc.problem)

    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(PipelineError, _service_error)
    app.add_exception_handler(Exception, _unexpected)


def error_response(status: int, field: str | None, problem: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(field, problem), status_code=status, headers=headers)


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first: dict[str, Any] = exc.errors()[0]
    location = [str(part) for part in first["loc"]]
    named = location[1:] if location[0] in REQUEST_PARTS else location
    field = location[0] if first["type"] == "json_invalid" or not named else ".".join(named)
    return error_response(422, field, _problem(first))


def _problem(error: dict[str, Any]) -> str:
    if error["type"] == "json_invalid":
        reason = error.get("ctx", {}).get("error", "cannot be decoded")
        return f"is not valid JSON: {reason} at character {error['loc'][-1]}"
    if tuple(error["loc"]) == ("body",):
        required = "is required: " if error["type"] == "missing" else "must be "
        return required + "a JSON object, sent with Content-Type: application/json"
    return error["msg"]


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, dict) else {"field": None, "problem": str(exc.detail)}
    return error_response(exc.status_code, detail["field"], detail["problem"], exc.headers)


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    return error_response(503, None, str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return error_response(500, None, "the request failed unexpectedly; the API's log has the details")
