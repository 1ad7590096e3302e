"""Opening disclosure requests: only for an entry the named check's claim verified, by the
checking organisation, under that check's live consent, always with the applicant's details
sealed to the holder, once per applicant and record; and what each organisation may see of
them."""

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
from tests.server.blindmatch.people import OTHER, REGISTERED
from tests.server.disclosures.conftest import (
    Matched,
    check_and_claim,
    match,
    ok,
    open_request,
    sealed_details_hex,
)

pytestmark = pytest.mark.anyio

NOT_CLAIMED = "urn:refcheck:problem:entry-not-claimed"


def _without_instance(problem: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in problem.items() if k != "instance"}


async def test_request_on_a_claimed_entry_is_opened_for_the_holder_with_its_deadline(
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


async def test_unclaimed_unknown_and_foreign_references_are_refused_alike(
    client: AppClient, network: Network, clock
) -> None:
    """An entry of the case that the check did not claim, an entry that does not exist, and a
    check that does not exist: one answer, so a prober learns nothing about which exist."""
    matched = await match(client, network, clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock(), max_checks=1)
    # Only the first key claimed: every other entry of the case stays unclaimed by this check.
    checked = await check_and_claim(
        client, network.b_hr.headers, consent["id"], REGISTERED, only={0}
    )
    [claimed] = checked.matches
    unclaimed = next(
        m.handle.entry_id
        for m in matched.of_case(matched.case["id"])
        if m.handle.entry_id != claimed.handle.entry_id
    )
    bodies = [
        matched.body(check_id=checked.check_id, entry_id=unclaimed),
        matched.body(entry_id=str(uuid.uuid4())),
        matched.body(check_id=str(uuid.uuid4())),
    ]
    answers = [
        await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
        for body in bodies
    ]
    for response in answers:
        assert response.status_code == 422
        assert response.json()["type"] == NOT_CLAIMED
    assert len({str(_without_instance(r.json())) for r in answers}) == 1
    # The control: the entry that check did claim is accepted.
    accepted = await client.post(
        "/v1/disclosure-requests",
        headers=network.b_hr.headers,
        json=matched.body(check_id=checked.check_id, entry_id=claimed.handle.entry_id),
    )
    assert accepted.status_code in (200, 201), accepted.text


async def test_an_entry_claimed_by_another_check_is_refused_for_this_one(
    client: AppClient, network: Network, matched: Matched, clock
) -> None:
    """A consent whose own check found nobody cannot borrow another check's claim: the request
    is bound to the check that proved the hit, and so to its consent."""
    other = await record_consent(client, network.b_hr.headers, now=clock())
    miss = await check_and_claim(client, network.b_hr.headers, other["id"], OTHER)
    assert miss.matches == []
    response = await client.post(
        "/v1/disclosure-requests",
        headers=network.b_hr.headers,
        json=matched.body(check_id=miss.check_id),
    )
    assert response.status_code == 422
    assert response.json()["type"] == NOT_CLAIMED


async def test_another_organisations_check_is_refused(
    client: AppClient, network: Network, matched: Matched
) -> None:
    # org-a's HR holds org-b's check and entry ids (say they leaked): refused, as if unclaimed.
    response = await client.post(
        "/v1/disclosure-requests", headers=network.a_hr.headers, json=matched.body()
    )
    assert response.status_code == 422
    assert response.json()["type"] == NOT_CLAIMED


async def test_another_principal_of_the_checking_organisation_may_ask(
    client: AppClient, network: Network, matched: Matched, session
) -> None:
    """The request is the organisation's: its other HR account may open it (the claim itself
    could only be made by the account that ran the check)."""
    colleague, key = make_principal(session, network.org_b, [Role.HR_CHECKER])
    session.commit()
    headers = await auth_headers(client, colleague, key)
    response = await client.post("/v1/disclosure-requests", headers=headers, json=matched.body())
    assert response.status_code == 201, response.text


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
    assert response.json()["type"] == NOT_CLAIMED


async def test_second_request_for_the_same_applicant_and_case_answers_with_the_open_one(
    client: AppClient, network: Network, matched: Matched
) -> None:
    first = await open_request(client, network, matched)
    second_entry = matched.of_case(matched.case["id"])[1]
    body = matched.body(entry_id=second_entry.handle.entry_id)
    response = await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
    assert response.status_code == 200
    assert response.json()["id"] == first["id"]


async def test_requesting_a_record_of_ones_own_organisation_is_refused(
    client: AppClient, network: Network, clock
) -> None:
    # org-a's HR matches a case org-a's own focal point registered.
    own = await match(client, network, clock.today(), checker=network.a_hr)
    response = await client.post(
        "/v1/disclosure-requests", headers=network.a_hr.headers, json=own.body()
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


async def test_a_request_without_sealed_details_is_refused(
    client: AppClient, network: Network, matched: Matched
) -> None:
    """The holder must always be able to confirm or deny the person, so details are required."""
    body = matched.body()
    del body["sealed_applicant_details"]
    response = await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


async def test_a_version_1_request_with_a_match_proof_is_refused(
    client: AppClient, network: Network, matched: Matched
) -> None:
    body = {**matched.body(), "consent_id": matched.consent_id, "match_proof": "00" * 32}
    del body["check_id"]
    response = await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
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
    sealed = sealed_details_hex(matched, network, {"full_name": "Siti N. Rahmawati"})
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
