"""`POST /v1/checks/{check_id}/entries`: a verified claim is answered with every live entry of
its tag and recorded as `(check_id, entry_id)`; anything else answers nothing or is refused, and
a refused request records nothing (docs/protocol.md, "Check", step 5)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.entry import open_handle
from server.audit.models import AuditEntry
from server.checks.models import CheckClaim
from server.context import AppContext
from tests.blindflow import record_consent, register_person
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.claims import post_claims, run_check
from tests.server.blindmatch.people import OTHER, REGISTERED

pytestmark = pytest.mark.anyio

CLAIM_INVALID = "urn:refcheck:problem:claim-invalid"


def _recorded(session: Session) -> set[tuple[str, str]]:
    session.expire_all()
    return {(c.check_id, c.entry_id) for c in session.scalars(select(CheckClaim))}


def _claimed_audits(session: Session) -> int:
    session.expire_all()
    stmt = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "check.claimed")
    return int(session.scalar(stmt) or 0)


async def test_a_claim_gets_every_live_entry_of_its_tag_and_each_is_recorded(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    """One person registered by two members: one claimed key, two entries, one per case."""
    a = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    b = await register_person(client, network.b_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    ran = await run_check(client, network.b_hr.headers, consent["id"])
    response = await post_claims(client, network.b_hr.headers, ran.check_id, [ran.claim(0)])
    assert response.status_code == 200, response.text
    entries = response.json()["entries"]
    assert len(entries) == 2
    handles = [open_handle(ran.points[0], bytes.fromhex(e["sealed_handle"])) for e in entries]
    assert all(h is not None for h in handles)
    assert {h.case_id for h in handles if h is not None} == {a["id"], b["id"]}
    assert _recorded(session) == {(ran.check_id, h.entry_id) for h in handles if h is not None}
    assert _claimed_audits(session) == 1


async def test_a_claim_of_a_tag_no_live_entry_has_is_answered_with_nothing(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    """A false positive of the filter: a valid proof, nothing to verify it against, nothing
    handed out, nothing recorded."""
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    ran = await run_check(client, network.b_hr.headers, consent["id"], OTHER)
    response = await post_claims(client, network.b_hr.headers, ran.check_id, [ran.claim(0)])
    assert response.status_code == 200, response.text
    assert response.json() == {"entries": []}
    assert _recorded(session) == set()
    assert _claimed_audits(session) == 0


async def test_one_bad_proof_refuses_the_request_naming_its_position_and_records_nothing(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    ran = await run_check(client, network.b_hr.headers, consent["id"])
    good, bad = ran.claim(0), ran.claim(1)
    proof = bytearray.fromhex(bad["proof"])
    proof[5] ^= 0x01
    bad["proof"] = proof.hex()
    response = await post_claims(client, network.b_hr.headers, ran.check_id, [good, bad])
    assert response.status_code == 422
    assert response.json()["type"] == CLAIM_INVALID
    assert response.json()["index"] == 1
    assert _recorded(session) == set()


async def test_an_index_outside_the_check_or_claimed_twice_is_refused(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    ran = await run_check(client, network.b_hr.headers, consent["id"])
    outside = {**ran.claim(0), "index": ctx.policy.keys_per_check}
    twice = [ran.claim(0), {**ran.claim(1), "index": ran.claim(0)["index"]}]
    for claims, position in (([outside], 0), (twice, 1)):
        response = await post_claims(client, network.b_hr.headers, ran.check_id, claims)
        assert response.status_code == 422
        assert response.json()["type"] == CLAIM_INVALID
        assert response.json()["index"] == position


async def test_a_case_withdrawn_after_the_check_is_not_handed_out(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    case = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    ran = await run_check(client, network.b_hr.headers, consent["id"])
    withdrawn = await client.post(
        f"/v1/cases/{case['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "appeal_upheld"},
    )
    assert withdrawn.status_code == 200
    response = await post_claims(client, network.b_hr.headers, ran.check_id, [ran.claim(0)])
    assert response.status_code == 200
    assert response.json()["entries"] == []
    assert _recorded(session) == set()


async def test_an_unknown_check_is_not_found(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    ran = await run_check(client, network.b_hr.headers, consent["id"], OTHER)
    response = await post_claims(client, network.b_hr.headers, str(uuid.uuid4()), [ran.claim(0)])
    assert response.status_code == 404
    assert response.json()["type"] == "urn:refcheck:problem:not-found"
