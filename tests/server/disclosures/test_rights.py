"""The person's rights: a withdrawn or purged record closes every open request about it (unread
answers deleted), a withdrawn consent stops its requests, and the applicant's lookup code shows
who checked and who was asked, and withdraws the consent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.disclosures.models import DisclosureRequest
from server.retention.services import run_sweep
from tests.blindflow import check_person
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import REGISTERED
from tests.server.disclosures import conftest
from tests.server.disclosures.conftest import Matched, answer_request, match, ok, open_request

pytestmark = pytest.mark.anyio


async def request_under_new_consent(
    client: AppClient, network: Network, matched: Matched
) -> dict[str, Any]:
    """Another request about the same record under a fresh consent, from a check under it."""
    request, _consent_id = await conftest.request_under_new_consent(client, network, matched)
    return request


def view(client: AppClient, network: Network, request: dict[str, Any]) -> Any:
    return client.get(f"/v1/disclosure-requests/{request['id']}", headers=network.b_hr.headers)


async def test_withdrawing_a_case_closes_its_open_requests_and_deletes_unread_answers(
    client: AppClient, network: Network, matched: Matched, session
) -> None:
    read = await open_request(client, network, matched)
    await answer_request(client, network, read, same_person="not_same_person")
    ok(
        await client.post(
            f"/v1/disclosure-requests/{read['id']}/close", headers=network.b_hr.headers
        )
    )
    unread = await request_under_new_consent(client, network, matched)
    await answer_request(client, network, unread, same_person="not_same_person")
    waiting = await request_under_new_consent(client, network, matched)

    ok(
        await client.post(
            f"/v1/cases/{matched.case['id']}/withdraw",
            headers=network.a_focal.headers,
            json={"reason": "appeal_upheld"},
        )
    )

    for request in (unread, waiting):
        body = ok(await view(client, network, request))
        assert body["state"] == "closed"
        assert body["close_reason"] == "record_withdrawn"
        assert body["sealed_answer"] is None
    # Already read and closed before: left as it was.
    body = ok(await view(client, network, read))
    assert body["close_reason"] == "read"
    session.expire_all()
    assert session.get(DisclosureRequest, unread["id"]).sealed_answer is None
    audited = session.scalars(
        select(AuditEntry).where(
            AuditEntry.object_id == waiting["id"], AuditEntry.action == "disclosure.close"
        )
    ).one()
    assert audited.details == {"state": "closed", "reason": "record_withdrawn"}
    # An answer the requester never read cannot be the reason an applicant was rejected.
    response = await client.post(
        f"/v1/disclosure-requests/{unread['id']}/outcome",
        headers=network.b_hr.headers,
        json={"outcome": "not_hired_disclosure"},
    )
    assert response.status_code == 409


async def test_purged_case_closes_its_requests_and_the_request_row_outlives_it(
    client: AppClient, network: Network, clock, ctx, session
) -> None:
    today = clock.today()
    matched = await match(
        client,
        network,
        today,
        case_overrides={"retention_until": (today + timedelta(days=5)).isoformat()},
    )
    request = await open_request(client, network, matched)
    clock.advance(days=6)
    report = run_sweep(ctx)
    assert report.total_purged == 1
    session.expire_all()
    row = session.get(DisclosureRequest, request["id"])
    assert row is not None
    assert row.case_id is None
    assert (row.state, row.close_reason) == ("closed", "record_purged")


async def test_withdrawn_consent_stops_unanswered_requests_but_not_answered_ones(
    client: AppClient, network: Network, matched: Matched
) -> None:
    waiting = await open_request(client, network, matched)
    other = await request_under_new_consent(client, network, matched)
    await answer_request(client, network, other)
    ok(
        await client.post(
            f"/v1/consents/{matched.consent_id}/withdraw", headers=network.b_hr.headers
        )
    )
    body = ok(await view(client, network, waiting))
    assert (body["state"], body["close_reason"]) == ("withdrawn", "consent_withdrawn")
    assert ok(await view(client, network, other))["state"] == "answered"


async def test_lookup_code_shows_who_checked_and_who_was_asked(
    client: AppClient, network: Network, matched: Matched, session
) -> None:
    await open_request(client, network, matched)
    code = matched.consent["lookup_code"]
    assert code
    for typed in (code, code.lower(), code.replace("-", "")):
        found = ok(await client.get(f"/v1/consent-lookup/{typed}", headers=network.b_hr.headers))
        assert found["consent_id"] == matched.consent_id
    assert found["org"] == "org-b" and found["status"] == "active"
    assert [c["org"] for c in found["checks"]] == ["org-b"]
    assert [(r["holder_org"], r["state"]) for r in found["disclosure_requests"]] == [
        ("org-a", "requested")
    ]
    # Nothing of HR's own references reaches the lookup.
    assert "applicant_ref" not in found and "position_ref" not in found
    admin = ok(await client.get(f"/v1/consent-lookup/{code}", headers=network.admin.headers))
    assert admin["consent_id"] == matched.consent_id
    lookups = session.scalars(select(AuditEntry).where(AuditEntry.action == "consent.lookup")).all()
    assert len(lookups) == 4  # three spellings of the code, then the secretariat


async def test_lookup_codes_of_other_organisations_and_unknown_codes_answer_alike(
    client: AppClient, network: Network, matched: Matched
) -> None:
    code = matched.consent["lookup_code"]
    foreign = await client.get(f"/v1/consent-lookup/{code}", headers=network.a_hr.headers)
    unknown = await client.get(
        "/v1/consent-lookup/0000-0000-0000-0000", headers=network.b_hr.headers
    )
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["detail"] == unknown.json()["detail"]
    short = await client.get("/v1/consent-lookup/0000", headers=network.b_hr.headers)
    assert short.status_code == 422


async def test_withdrawal_through_the_lookup_stops_requests_and_later_checks(
    client: AppClient, network: Network, matched: Matched
) -> None:
    request = await open_request(client, network, matched)
    code = matched.consent["lookup_code"]
    withdrawn = ok(
        await client.post(f"/v1/consent-lookup/{code}/withdraw", headers=network.admin.headers)
    )
    assert withdrawn["status"] == "withdrawn" and withdrawn["withdrawn_at"]
    assert withdrawn["disclosure_requests"][0]["state"] == "withdrawn"
    again = ok(
        await client.post(f"/v1/consent-lookup/{code}/withdraw", headers=network.b_hr.headers)
    )
    assert again["withdrawn_at"] == withdrawn["withdrawn_at"]
    body = ok(await view(client, network, request))
    assert body["close_reason"] == "consent_withdrawn"
    refused = await check_person(client, network.b_hr.headers, matched.consent_id, REGISTERED)
    assert refused.response.json()["type"] == "urn:refcheck:problem:consent-withdrawn"
