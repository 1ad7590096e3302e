"""One error format (RFC 9457 problem+json), and nothing of the request or a traceback in it."""

from __future__ import annotations

import logging

import pytest

from tests.factories import AppClient

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
# Looks like an Indonesian national id number: must never be echoed back or logged.
IDENTIFIER = "3201234567890001"


async def test_validation_errors_name_fields_but_never_echo_the_input(network, client):
    response = await client.post(
        "/v1/orgs",
        headers=network.admin.headers,
        json={
            "legal_name": "X",
            "short_name": IDENTIFIER + "_BAD",
            "org_type": "ingo",
            "mou_sha256": IDENTIFIER,
        },
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:refcheck:problem:invalid-request"
    assert {tuple(e["loc"]) for e in body["errors"]} == {
        ("body", "short_name"),
        ("body", "mou_sha256"),
    }
    assert IDENTIFIER not in response.text


async def test_malformed_json_is_a_problem(network, client):
    response = await client.post(
        "/v1/orgs",
        headers={**network.admin.headers, "content-type": "application/json"},
        content=b'{"legal_name": ' + IDENTIFIER.encode(),
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert IDENTIFIER not in response.text


async def test_unknown_route_and_wrong_method_are_problems(client):
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["type"] == "urn:refcheck:problem:not-found"
    wrong = await client.delete("/v1/policy")
    assert wrong.status_code == 405
    assert wrong.json()["type"] == "urn:refcheck:problem:method-not-allowed"


async def test_domain_errors_carry_their_stable_type_and_extra_members(network, client):
    response = await client.post(
        "/v1/orgs",
        headers=network.admin.headers,
        json={
            "legal_name": "X",
            "short_name": "org-vital",
            "org_type": "ingo",
            "legal_basis": "vital_interests",
        },
    )
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "urn:refcheck:problem:policy-violation"
    assert body["rule"] == "legal_basis"
    assert body["instance"] == "/v1/orgs"


async def test_unexpected_errors_are_opaque_and_logged_without_their_message(
    app, caplog: pytest.LogCaptureFixture
):
    def explode() -> None:
        raise RuntimeError(f"database said: duplicate key {IDENTIFIER}")

    app.add_api_route("/test-only/explode", explode, methods=["GET"])
    caplog.set_level(logging.DEBUG)
    async with AppClient(app) as client:
        response = await client.get("/test-only/explode")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:refcheck:problem:internal-error"
    assert IDENTIFIER not in response.text
    assert "Traceback" not in response.text
    assert "unhandled RuntimeError on GET /test-only/explode" in caplog.text
    assert IDENTIFIER not in caplog.text
    assert all(record.exc_info is None for record in caplog.records)
