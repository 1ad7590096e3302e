"""`POST /v1/checks`: consent state and budget, quota, the answer (evaluations, proof, signed
filter header), what the server records, and which registered entries a check finds."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.hazmat.ristretto255 import IDENTITY
from protocol.identity import derive_keys
from server.audit.models import AuditEntry
from server.checks.models import Check
from server.consents.models import Consent
from server.context import AppContext
from server.quotas.services import seconds_to_next_utc_day
from server.registry.models import OrgStatus
from tests.blindflow import (
    build_check_request,
    check_person,
    fetch_key,
    record_consent,
    register_person,
)
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED

pytestmark = pytest.mark.anyio


async def _consent(client: AppClient, network: Network, clock: MutableClock, **kw: Any) -> str:
    created = await record_consent(client, network.b_hr.headers, now=clock(), **kw)
    consent_id = created["id"]
    assert isinstance(consent_id, str)
    return consent_id


async def _check_body(
    client: AppClient, network: Network, consent_id: str, person: dict[str, object] = OTHER
) -> dict[str, Any]:
    server_key = await fetch_key(client, network.b_hr.headers)
    _batch, body = build_check_request(server_key, consent_id, derive_keys(person))
    return body


def _type(response: Any) -> str:
    problem_type = response.json()["type"]
    assert isinstance(problem_type, str)
    return problem_type.removeprefix("urn:refcheck:problem:")


async def test_check_spends_one_unit_of_budget_and_records_who_when_and_which_key_only(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    consent_id = await _consent(client, network, clock)
    body = await _check_body(client, network, consent_id)
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"check_id", "key_id", "evaluated_elements", "proof", "filter"}
    assert answer["key_id"] == ctx.keys.oprf_key_id
    assert len(answer["evaluated_elements"]) == ctx.policy.keys_per_check

    session.expire_all()
    consent = session.get(Consent, consent_id)
    assert consent is not None and consent.checks_used == 1
    check = session.scalars(select(Check)).one()
    assert (check.id, check.org_id, check.consent_id, check.principal_id, check.key_seq) == (
        answer["check_id"],
        network.org_b.id,
        consent_id,
        network.b_hr.id,
        ctx.keys.oprf_key_seq,
    )
    # The evaluations are kept for the entries call, in the order sent, and nothing else of
    # the request: the blinded elements are not.
    assert check.evaluated == b"".join(bytes.fromhex(z) for z in answer["evaluated_elements"])
    assert check.rerun_of is None
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "check.run")).one()
    assert audit.object_type == "consent" and audit.object_id == consent_id
    assert not audit.details, "a check's audit entry holds no count of the applicant's keys"


async def test_expired_consent_is_refused(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    consent_id = await _consent(client, network, clock, expires_on=clock.today().isoformat())
    body = await _check_body(client, network, consent_id)
    clock.advance(days=1)
    await network.b_hr.refresh(client)
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    assert response.status_code == 409
    assert _type(response) == "consent-expired"


async def test_withdrawn_consent_is_refused(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    consent_id = await _consent(client, network, clock)
    await client.post(f"/v1/consents/{consent_id}/withdraw", headers=network.b_hr.headers)
    body = await _check_body(client, network, consent_id)
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    assert response.status_code == 409
    assert _type(response) == "consent-withdrawn"


async def test_consent_over_budget_is_refused(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    consent_id = await _consent(client, network, clock, max_checks=2)
    for _ in range(2):
        ok = await check_person(client, network.b_hr.headers, consent_id, OTHER)
        assert ok.response.status_code == 200
    over = await check_person(client, network.b_hr.headers, consent_id, OTHER)
    assert over.response.status_code == 409
    assert _type(over.response) == "consent-exhausted"
    session.expire_all()
    consent = session.get(Consent, consent_id)
    assert consent is not None and consent.checks_used == 2


async def test_another_organisations_consent_is_not_found(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    consent_id = await _consent(client, network, clock)
    body = await _check_body(client, network, consent_id)
    response = await client.post("/v1/checks", headers=network.a_hr.headers, json=body)
    assert response.status_code == 404
    assert _type(response) == "not-found"
    unknown = {**body, "consent_id": "00000000-0000-4000-8000-000000000000"}
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=unknown)
    assert response.status_code == 404


async def test_refused_checks_spend_no_budget(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    consent_id = await _consent(client, network, clock)
    body = await _check_body(client, network, consent_id)
    bad = dict(body, blinded_elements=[IDENTITY.hex(), *body["blinded_elements"][1:]])
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=bad)
    assert response.status_code == 422
    assert _type(response) == "invalid-element" and response.json()["index"] == 0
    session.expire_all()
    consent = session.get(Consent, consent_id)
    assert consent is not None and consent.checks_used == 0
    assert session.scalars(select(Check)).all() == []


async def test_a_version_1_request_with_buckets_is_refused(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    consent_id = await _consent(client, network, clock)
    body = await _check_body(client, network, consent_id)
    buckets = list(range(len(body["blinded_elements"])))
    response = await client.post(
        "/v1/checks", headers=network.b_hr.headers, json={**body, "buckets": buckets}
    )
    assert response.status_code == 422
    assert _type(response) == "invalid-request"


async def test_stale_key_id_is_refused(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    consent_id = await _consent(client, network, clock)
    body = await _check_body(client, network, consent_id)
    response = await client.post(
        "/v1/checks", headers=network.b_hr.headers, json={**body, "key_id": "f" * 16}
    )
    assert response.status_code == 409
    assert _type(response) == "key-mismatch"


async def test_checks_need_an_mou_that_permits_checks(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    consent_id = await _consent(client, network, clock)
    body = await _check_body(client, network, consent_id)
    network.org_b.status = OrgStatus.SUSPENDED
    session.commit()
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    assert response.status_code == 403
    assert _type(response) == "mou-inactive"


async def test_focal_points_cannot_run_checks(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    consent_id = await _consent(client, network, clock)
    body = await _check_body(client, network, consent_id)
    response = await client.post("/v1/checks", headers=network.b_focal.headers, json=body)
    assert response.status_code == 403
    assert _type(response) == "permission-denied"


async def test_over_quota_check_is_refused_with_the_time_to_retry(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> None:
    clock.set(datetime.combine(clock.today(), time(22), UTC))
    for actor in network.actors.values():
        await actor.refresh(client)
    ctx.policy = ctx.policy.model_copy(update={"daily_check_quota": 2})
    consents = [await _consent(client, network, clock) for _ in range(3)]
    for consent_id in consents[:2]:
        ok = await check_person(client, network.b_hr.headers, consent_id, OTHER)
        assert ok.response.status_code == 200
    over = await check_person(client, network.b_hr.headers, consents[2], OTHER)
    assert over.response.status_code == 429
    assert _type(over.response) == "quota-exceeded"
    assert over.response.headers["Retry-After"] == str(2 * 3600)
    assert over.response.json()["retry_after_seconds"] == 2 * 3600
    session.expire_all()
    third = session.get(Consent, consents[2])
    assert third is not None and third.checks_used == 0

    # The quota is per organisation: org-a still checks...
    a_consent = await record_consent(client, network.a_hr.headers, now=clock())
    other_org = await check_person(client, network.a_hr.headers, a_consent["id"], OTHER)
    assert other_org.response.status_code == 200
    # ...and org-b again after UTC midnight.
    clock.advance(hours=2)
    await network.b_hr.refresh(client)
    again = await check_person(client, network.b_hr.headers, consents[2], OTHER)
    assert again.response.status_code == 200


def test_retry_after_counts_to_the_next_utc_midnight() -> None:
    assert seconds_to_next_utc_day(datetime(2026, 1, 1, 23, 59, 59, tzinfo=UTC)) == 1
    assert seconds_to_next_utc_day(datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)) == 86400
    assert seconds_to_next_utc_day(datetime(2026, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)) == 43200


async def test_suspended_holders_cases_stay_but_stop_matching(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent_id = await _consent(client, network, clock)
    network.org_a.status = OrgStatus.SUSPENDED
    session.commit()
    hidden = await check_person(client, network.b_hr.headers, consent_id, REGISTERED)
    assert hidden.response.status_code == 200 and hidden.matches == []
    network.org_a.status = OrgStatus.ACTIVE
    session.commit()
    back = await check_person(client, network.b_hr.headers, consent_id, REGISTERED)
    assert back.holder_org_ids == {network.org_a.id}


@pytest.mark.parametrize(("policy", "matches"), [("purge", False), ("keep_until_retention", True)])
async def test_withdrawn_holders_cases_match_only_if_the_policy_keeps_them(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    session: Session,
    ctx: AppContext,
    policy: str,
    matches: bool,
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"withdrawn_org_cases": policy})
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent_id = await _consent(client, network, clock)
    network.org_a.status = OrgStatus.WITHDRAWN
    session.commit()
    outcome = await check_person(client, network.b_hr.headers, consent_id, REGISTERED)
    assert outcome.response.status_code == 200
    assert bool(outcome.matches) is matches


async def test_checker_also_finds_its_own_organisations_cases(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    await register_person(client, network.b_focal.headers, REGISTERED, today=clock.today())
    consent_id = await _consent(client, network, clock)
    outcome = await check_person(client, network.b_hr.headers, consent_id, REGISTERED)
    assert outcome.holder_org_ids == {network.org_b.id}


async def test_one_person_registered_by_two_members_matches_both(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    await register_person(client, network.b_focal.headers, REGISTERED, today=clock.today())
    consent_id = await _consent(client, network, clock)
    outcome = await check_person(client, network.b_hr.headers, consent_id, REGISTERED)
    assert outcome.holder_org_ids == {network.org_a.id, network.org_b.id}


async def test_expired_case_stops_matching_before_any_sweep(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    await register_person(
        client,
        network.a_focal.headers,
        REGISTERED,
        today=clock.today(),
        retention_until=clock.today().isoformat(),
    )
    consent_id = await _consent(client, network, clock)
    still = await check_person(client, network.b_hr.headers, consent_id, REGISTERED)
    assert still.holder_org_ids == {network.org_a.id}
    clock.advance(days=1)
    await network.b_hr.refresh(client)
    gone = await check_person(client, network.b_hr.headers, consent_id, REGISTERED)
    assert gone.response.status_code == 200 and gone.matches == []
