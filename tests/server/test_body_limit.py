"""Request bodies are bounded before anything reads them (413 `payload-too-large`).

FastAPI reads and parses a whole body before any dependency runs, authentication included, so
without a limit anybody, signed in or not, could make the server hold and parse as much as they
care to send.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from protocol.messages import MAX_BATCH
from protocol.sealed_keys import MAX_KEYS_PER_CHECK, plaintext_size
from server.settings import Settings
from tests.factories import AppClient

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"


def _limit(client: AppClient) -> int:
    return client.ctx.settings.max_body_bytes


async def test_the_default_limit_is_far_above_any_real_body_and_bounded() -> None:
    limit = Settings(environment="test").max_body_bytes
    # The largest real bodies: a check of the most elements a request may carry, and a
    # registration whose sealed keys have the most slots a policy allows (some 17 KB each).
    check = {
        "consent_id": str(uuid.uuid4()),
        "key_id": "0" * 16,
        "blinded_elements": ["00" * 32] * MAX_BATCH,
    }
    sealed = plaintext_size(MAX_KEYS_PER_CHECK) + 48  # a SealedBox adds 48 bytes
    case = {"sealed_keys": "00" * sealed, "key_id": "0" * 16, "mou_reference": "x" * 64}
    largest = max(len(json.dumps(check)), len(json.dumps(case)) + 1024)
    assert 10 * largest <= limit <= 16 * 1024 * 1024


async def test_an_unauthenticated_body_over_the_limit_is_refused_with_413(client):
    body = b'{"x": "' + b"a" * _limit(client) + b'"}'
    response = await client.post(
        "/v1/cases", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:refcheck:problem:payload-too-large"


async def test_the_token_endpoint_refuses_a_form_over_the_limit(client):
    form = b"grant_type=client_credentials&client_assertion=" + b"a" * _limit(client)
    response = await client.post(
        "/v1/oauth/token",
        content=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert response.json()["type"] == "urn:refcheck:problem:payload-too-large"


async def test_a_streamed_body_without_length_is_cut_off_at_the_limit(network, client):
    chunk = b"a" * 65536

    async def stream() -> AsyncIterator[bytes]:
        yield b'{"legal_name": "'
        for _ in range(_limit(client) // len(chunk) + 2):
            yield chunk
        yield b'"}'

    response = await client.post(
        "/v1/orgs",
        content=stream(),
        headers={**network.admin.headers, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["type"] == "urn:refcheck:problem:payload-too-large"


async def test_a_body_under_the_limit_is_served_as_before(network, client):
    response = await client.post(
        "/v1/orgs",
        headers=network.admin.headers,
        json={"legal_name": "Yayasan Batas", "short_name": "batas", "org_type": "cso"},
    )
    assert response.status_code == 201, response.text
