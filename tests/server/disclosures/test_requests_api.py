"""Opening disclosure requests: only on a proven match, under a live consent, once per
applicant and record; and what each organisation may see of them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from protocol.disclosure import SEALED_DETAILS_SIZE
from server.auth.permissions import Role
from server.disclosures.models import DisclosureRequest
from tests.blindflow import record_consent
from tests.factories import AppClient, Network, auth_headers, make_org, make_principal
from tests.server.disclosures.conftest import Matched, ok, open_request, sealed_details_hex

pytestmark = pytest.mark.anyio

PROOF_INVALID = "urn:refcheck:problem:match-proof-invalid"


async def test_request_on_a_proven_match_is_opened_for_the_holder_with_its_deadline(
    client: AppClient, network: Network, matched: Matched, ctx
) -> None:
    request = await open_request(client, network, matched)
    assert request["state"] == "requested"
    assert request["role"] == "requester"
    assert request["holder_org_id"] == network.org_a.id
    assert request["holder_org"] == "org-a"
    assert request["requester_org_id"] == network.org_b.id
    assert request["case_id"] == matched.case["id"]
    assert request["entry_id"] == matched.first.handle.entry_id
    created = datetime.fromisoformat(request["created_at"])
    due = datetime.fromisoformat(request["due_at"])
    assert due - created == timedelta(days=ctx.policy.disclosure_response_deadline_days)
    assert request["overdue"] is False
    assert request["sealed_answer"] is None


async def test_wrong_proof_and_unknown_entry_are_refused_alike(
    client: AppClient, network: Network, matched: Matched
) -> None:
    wrong = matched.body(match_proof="00" * 32)
    unknown = matched.body(entry_id=str(uuid.uuid4()))
    answers = [
        await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
        for body in (wrong, unknown)
    ]
    for response in answers:
        assert response.status_code == 422
        assert response.json()["type"] == PROOF_INVALID
    first, second = (r.json() for r in answers)
    assert {k: v for k, v in first.items() if k != "instance"} == {
        k: v for k, v in second.items() if k != "instance"
    }


async def test_proof_made_under_another_consent_is_refused(
    client: AppClient, network: Network, matched: Matched
) -> None:
    other = await record_consent(client, network.b_hr.headers, now=client.ctx.now())
    # The proof binds the consent: replayed under another applicant's consent it fails.
    body = matched.body(consent_id=other["id"])
    response = await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
    assert response.status_code == 422
    assert response.json()["type"] == PROOF_INVALID


async def test_proof_for_one_entry_does_not_open_another_record(
    client: AppClient, network: Network, matched: Matched
) -> None:
    other_entries = [f for f in matched.found if f.handle.entry_id != matched.first.handle.entry_id]
    assert other_entries, "the registered person has several keys"
    body = matched.body(entry_id=other_entries[0].handle.entry_id)
    response = await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
    assert response.json()["type"] == PROOF_INVALID


async def test_another_organisations_consent_answers_not_found(
    client: AppClient, network: Network, matched: Matched
) -> None:
    # org-a's HR holds a valid proof made for org-b's consent (say it was leaked): refused.
    response = await client.post(
        "/v1/disclosure-requests", headers=network.a_hr.headers, json=matched.body()
    )
    assert response.status_code == 404


async def test_expired_consent_is_refused(
    client: AppClient, network: Network, matched: Matched, clock
) -> None:
    clock.advance(days=91)
    await network.b_hr.refresh(client)
    response = await client.post(
        "/v1/disclosure-requests", headers=network.b_hr.headers, json=matched.body()
    )
    assert response.json()["type"] == "urn:refcheck:problem:consent-expired"


async def test_withdrawn_consent_is_refused(
    client: AppClient, network: Network, matched: Matched
) -> None:
    ok(
        await client.post(
            f"/v1/consents/{matched.consent_id}/withdraw", headers=network.b_hr.headers
        )
    )
    response = await client.post(
        "/v1/disclosure-requests", headers=network.b_hr.headers, json=matched.body()
    )
    assert response.status_code == 409
    assert response.json()["type"] == "urn:refcheck:problem:consent-withdrawn"


async def test_withdrawn_case_can_no_longer_be_asked_about(
    client: AppClient, network: Network, matched: Matched
) -> None:
    ok(
        await client.post(
            f"/v1/cases/{matched.case['id']}/withdraw",
            headers=network.a_focal.headers,
            json={"reason": "appeal_upheld"},
        )
    )
    response = await client.post(
        "/v1/disclosure-requests", headers=network.b_hr.headers, json=matched.body()
    )
    assert response.json()["type"] == PROOF_INVALID


async def test_second_request_for_the_same_applicant_and_case_answers_with_the_open_one(
    client: AppClient, network: Network, matched: Matched
) -> None:
    first = await open_request(client, network, matched)
    second_entry = matched.found[1]
    body = matched.body(
        entry_id=second_entry.handle.entry_id,
        match_proof=second_entry.proof(matched.consent_id),
    )
    response = await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
    assert response.status_code == 200
    assert response.json()["id"] == first["id"]


async def test_requesting_a_record_of_ones_own_organisation_is_refused(
    client: AppClient, network: Network, session
) -> None:
    from tests.server.disclosures.conftest import match

    # org-a's HR matches a case org-a's own focal point registered.
    own = await match(client, network, client.ctx.now().date())
    consent = await record_consent(client, network.a_hr.headers, now=client.ctx.now())
    body = {
        "consent_id": consent["id"],
        "entry_id": own.first.handle.entry_id,
        "match_proof": own.first.proof(consent["id"]),
    }
    response = await client.post("/v1/disclosure-requests", headers=network.a_hr.headers, json=body)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


@pytest.mark.parametrize("size", [SEALED_DETAILS_SIZE - 1, SEALED_DETAILS_SIZE + 1])
async def test_sealed_details_of_another_size_are_refused(
    client: AppClient, network: Network, matched: Matched, size: int
) -> None:
    body = matched.body(sealed_applicant_details="ab" * size)
    response = await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
    assert response.status_code == 422


async def test_holder_sees_the_sealed_details_and_requester_does_not(
    client: AppClient, network: Network, matched: Matched
) -> None:
    sealed = sealed_details_hex(matched, network, {"full_name": "Siti Rahmawati"})
    request = await open_request(client, network, matched, sealed_applicant_details=sealed)
    assert request["sealed_applicant_details"] is None
    holder_view = ok(
        await client.get(
            f"/v1/disclosure-requests/{request['id']}", headers=network.a_focal.headers
        )
    )
    assert holder_view["role"] == "holder"
    assert holder_view["sealed_applicant_details"] == sealed
    assert holder_view["consent_id"] == matched.consent_id


async def test_a_third_organisation_can_neither_list_nor_read_nor_act(
    client: AppClient, network: Network, matched: Matched, session
) -> None:
    request = await open_request(client, network, matched)
    org_c = make_org(session, "org-c", today=client.ctx.now().date())
    focal, focal_key = make_principal(session, org_c, [Role.FOCAL_POINT])
    hr, hr_key = make_principal(session, org_c, [Role.HR_CHECKER])
    session.commit()
    for principal, key in ((focal, focal_key), (hr, hr_key)):
        headers = await auth_headers(client, principal, key)
        listed = ok(await client.get("/v1/disclosure-requests", headers=headers))
        assert listed["items"] == []
        base = f"/v1/disclosure-requests/{request['id']}"
        assert (await client.get(base, headers=headers)).status_code == 404
        for action in ("acknowledge", "withdraw", "close"):
            response = await client.post(f"{base}/{action}", headers=headers)
            assert response.status_code in (403, 404), action
    # The unknown id and the foreign id answer the same.
    missing = await client.get(
        f"/v1/disclosure-requests/{uuid.uuid4()}", headers=network.a_focal.headers
    )
    assert missing.status_code == 404


async def test_each_member_sees_only_its_own_side(
    client: AppClient, network: Network, matched: Matched
) -> None:
    request = await open_request(client, network, matched)
    base = f"/v1/disclosure-requests/{request['id']}"
    # The holder's HR account and the requester's focal point have no business with it.
    assert (await client.get(base, headers=network.a_hr.headers)).status_code == 404
    assert (await client.get(base, headers=network.b_focal.headers)).status_code == 404
    holder_list = ok(await client.get("/v1/disclosure-requests", headers=network.a_focal.headers))
    assert [i["id"] for i in holder_list["items"]] == [request["id"]]
    assert holder_list["items"][0]["role"] == "holder"
    assert (
        ok(await client.get("/v1/disclosure-requests", headers=network.a_hr.headers))["items"] == []
    )
    refused = await client.get(
        "/v1/disclosure-requests", params={"role": "holder"}, headers=network.b_hr.headers
    )
    assert refused.status_code == 403


async def test_listing_filters_by_state_and_pages(
    client: AppClient, network: Network, matched: Matched
) -> None:
    request = await open_request(client, network, matched)
    headers = network.a_focal.headers
    listed = ok(
        await client.get("/v1/disclosure-requests", params={"state": "requested"}, headers=headers)
    )
    assert [i["id"] for i in listed["items"]] == [request["id"]]
    assert listed["next_offset"] is None
    none = ok(
        await client.get("/v1/disclosure-requests", params={"state": "answered"}, headers=headers)
    )
    assert none["items"] == []
    bad = await client.get("/v1/disclosure-requests", params={"state": "lost"}, headers=headers)
    assert bad.status_code == 422


async def test_secretariat_sees_no_requests_until_overdue_and_never_their_content(
    client: AppClient, network: Network, matched: Matched, clock
) -> None:
    sealed = sealed_details_hex(matched, network, {"full_name": "Siti Rahmawati"})
    await open_request(client, network, matched, sealed_applicant_details=sealed)
    admin = network.admin
    assert ok(await client.get("/v1/disclosure-requests", headers=admin.headers))["items"] == []
    refused = await client.get(
        "/v1/disclosure-requests", params={"overdue": "false"}, headers=admin.headers
    )
    assert refused.status_code == 422
    auditor = await client.get("/v1/disclosure-requests", headers=network.auditor.headers)
    assert auditor.status_code == 403


async def test_no_request_reaches_a_holder_that_left_the_network(
    client: AppClient, network: Network, matched: Matched, session, ctx
) -> None:
    # The policy keeps a withdrawn member's cases matching; its records still cannot be asked
    # about, so no applicant details go to an organisation outside the MoU.
    ctx.policy = ctx.policy.model_copy(update={"withdrawn_org_cases": "keep_until_retention"})
    network.org_a.status = "withdrawn"
    session.commit()
    sealed = sealed_details_hex(matched, network, {"full_name": "Siti Rahmawati"})
    body = matched.body(sealed_applicant_details=sealed)
    response = await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
    assert response.status_code == 409
    assert response.json()["type"] == "urn:refcheck:problem:holder-inactive"
    session.expire_all()
    assert session.scalars(select(DisclosureRequest)).all() == []
