"""A synchronous client of the results service's query server (see query_api for the routes).

Every call but is_healthy presents an API token (pipeline.tokens.client_token finds the CLI's)."""

from __future__ import annotations

from typing import Any

import httpx

from pipeline.errors import ServiceError

DEFAULT_TIMEOUT_S = 10.0


def fetch_stats(
    base_url: str, subscription_id: str | None = None, *, token: str, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Per-subscription rows: subscription_id, attempts, delivered, failed, p50_ms, p99_ms, last_attempt_at."""
    body = _get(base_url, "/v1/stats", {"subscription_id": subscription_id}, token, timeout_s)
    return list(body["subscriptions"])


def fetch(base_url: str, path: str, query: dict[str, str | None] | None = None, *, token: str,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Any query route's JSON answer (see query_api for the routes); unset parameters are left out."""
    return _get(base_url, path, query or {}, token, timeout_s)


def count_attempts(
    base_url: str,
    subscription_id: str | None = None,
    outcome: str | None = None,
    *,
    token: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> int:
    body = _get(base_url, "/v1/attempts/count", {"subscription_id": subscription_id, "outcome": outcome}, token,
                timeout_s)
    return int(body["count"])


def is_healthy(base_url: str, *, timeout_s: float = 2.0) -> bool:
    try:
        return _get(base_url, "/healthz", {}, None, timeout_s).get("ok") is True
    except ServiceError:
        return False


def _get(base_url: str, path: str, query: dict[str, str | None], token: str | None,
         timeout_s: float) -> dict[str, Any]:
    url = base_url.rstrip("/") + path
    params = {name: value for name, value in query.items() if value is not None}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url, params=params, headers=headers, timeout=timeout_s)
    except httpx.ConnectError as exc:
        raise ServiceError(
            f"the results service is not running at {base_url} (start it with `python -m pipeline.results`)"
        ) from exc
    except httpx.HTTPError as exc:
        raise ServiceError(f"the results service at {base_url} did not answer {path}: {exc}") from exc
    if response.status_code != 200:
        raise ServiceError(f"the results service answered {path} with {response.status_code}: {_reason(response)}")
    return response.json()


def _reason(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", response.text)
    except ValueError:
        return response.text[:200]
    if isinstance(error, dict):  # {"field", "problem"}; no field when no parameter is at fault
        return f"{error['field']}: {error.get('problem')}" if error.get("field") else str(error.get("problem"))
    return str(error)
