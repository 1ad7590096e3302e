"""End to end over HTTP: a focal point registers a person through the real blind flow, an HR
checker of another member finds them under spelling variants, and stops finding them after
withdrawal or retention expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.blindflow import check_person, record_consent, register_person
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED, SPELLING_VARIANTS

pytestmark = pytest.mark.anyio


async def test_checker_of_another_member_finds_registered_person_under_spelling_variants(
    client: AppClient, network: Network, clock
) -> None:
    case = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    assert case["status"] == "active" and case["org_id"] == network.org_a.id
    assert len(case["filter_values"]["filter_values"]) == client.ctx.policy.keys_per_check

    consent = await record_consent(
        client, network.b_hr.headers, now=clock(), max_checks=len(SPELLING_VARIANTS) + 1
    )
    for variant in [REGISTERED, *SPELLING_VARIANTS]:
        outcome = await check_person(client, network.b_hr.headers, consent["id"], variant)
        assert outcome.response.status_code == 200, outcome.response.text
        assert outcome.holder_org_ids == {network.org_a.id}
        assert outcome.case_ids == {case["id"]}
        assert {m.handle.holder_org_name for m in outcome.matches} == {"org-a"}


async def test_check_of_a_different_person_finds_nothing(
    client: AppClient, network: Network, clock
) -> None:
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    outcome = await check_person(client, network.b_hr.headers, consent["id"], OTHER)
    assert outcome.response.status_code == 200
    assert outcome.matches == []


async def test_withdrawn_case_stops_matching_at_once(
    client: AppClient, network: Network, clock
) -> None:
    case = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    before = await check_person(client, network.b_hr.headers, consent["id"], REGISTERED)
    assert before.case_ids == {case["id"]}

    response = await client.post(
        f"/v1/cases/{case['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "appeal_upheld"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "withdrawn"

    after = await check_person(client, network.b_hr.headers, consent["id"], REGISTERED)
    assert after.response.status_code == 200
    assert after.matches == []


async def test_case_past_retention_stops_matching_and_is_swept(
    client: AppClient, network: Network, clock, ctx, session
) -> None:
    from server.cases.models import Case, Pseudonym
    from server.retention.services import run_sweep

    today = clock.today()
    retention = today + timedelta(days=30)
    case = await register_person(
        client,
        network.a_focal.headers,
        REGISTERED,
        today=today,
        retention_until=retention.isoformat(),
    )
    clock.advance(days=31)
    for actor in (network.b_hr,):
        await actor.refresh(client)
    consent = await record_consent(client, network.b_hr.headers, now=clock())

    # Past its date the case no longer matches, even before the sweeper has run...
    outcome = await check_person(client, network.b_hr.headers, consent["id"], REGISTERED)
    assert outcome.response.status_code == 200
    assert outcome.matches == []

    # ...and the sweep deletes it and its entries.
    report = run_sweep(ctx)
    assert report.purged["retention_expired"] == 1
    session.expire_all()
    assert session.get(Case, case["id"]) is None
    assert session.query(Pseudonym).filter_by(case_id=case["id"]).count() == 0
    outcome = await check_person(client, network.b_hr.headers, consent["id"], REGISTERED)
    assert outcome.matches == []
