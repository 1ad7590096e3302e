"""Validation problems name each field with a message a person understands (issue 14, item 6):
`errors: [{"field", "message"}]` in the problem+json body, and never the value sent."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

IDENTIFIER = "3201234567890001"


async def test_a_date_that_is_not_in_the_calendar_is_named_with_a_plain_message(network, client):
    response = await client.post(
        "/v1/orgs",
        headers=network.admin.headers,
        json={
            "legal_name": "Yayasan Contoh",
            "short_name": "org-dates",
            "org_type": "ingo",
            "mou_expires_on": "2027-02-30",
            "mou_version": IDENTIFIER,
            "unexpected": IDENTIFIER,
        },
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    by_field = {e["field"]: e["message"] for e in errors}
    assert by_field["mou_expires_on"] == "not a real calendar date (YYYY-MM-DD)"
    assert by_field["unexpected"] == "not an accepted field"
    assert all(set(e) >= {"field", "message"} for e in errors)
    assert IDENTIFIER not in response.text


async def test_a_missing_field_and_a_bad_query_parameter_are_named_without_their_location(
    network, client
):
    missing = await client.post(
        "/v1/orgs", headers=network.admin.headers, json={"legal_name": "X", "org_type": "ingo"}
    )
    assert {"field": "short_name", "message": "required"} in [
        {"field": e["field"], "message": e["message"]} for e in missing.json()["errors"]
    ]
    query = await client.get("/v1/audit?limit=0", headers=network.admin.headers)
    assert query.status_code == 422
    assert [e["field"] for e in query.json()["errors"]] == ["limit"]
