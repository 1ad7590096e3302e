"""Calls to endpoints the SDK has no method for (yet): JSON in, JSON out, a problem+json answer
raised as the SDK's exception for it, like every SDK method."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from client_sdk._client import Client
from client_sdk.errors import InvalidResponse, error_from_response


def call_json(
    client: Client,
    method: str,
    path: str,
    body: Any = None,
    *,
    params: Mapping[str, str] | None = None,
) -> Any:
    """The decoded JSON answer of `method path`; an error answer raises its `ApiError`."""
    response = client.request(method, path, json=body, params=params)
    payload: Any = None
    if "json" in response.headers.get("Content-Type", ""):
        try:
            payload = response.json()
        except ValueError:
            payload = None
    if response.status_code >= 400:
        raise error_from_response(
            response.status_code, payload, retry_after=response.headers.get("Retry-After")
        )
    if payload is None:
        raise InvalidResponse(f"{method} {path}: the answer was not JSON")
    return payload
