"""`GET /v1/stats`: monthly counters, network-wide for the secretariat, own for members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from server.context import AppContext
from server.retention.services import run_sweep
from server.stats.services import Counter, increment
from tests.blindflow import check_person, record_consent, register_person
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED

pytestmark = pytest.mark.anyio


async def _activity(client: AppClient, network: Network, clock: MutableClock) -> None:
    """org-a registers one case (retention 5 days) and another that it withdraws at once; org-b
    records two consents (one withdrawn) and runs one check."""
    await register_person(
        client,
        network.a_focal.headers,
        REGISTERED,
        today=clock.today(),
        retention_until=(clock.today() + timedelta(days=5)).isoformat(),
    )
    other = await register_person(client, network.a_focal.headers, OTHER, today=clock.today())
    await client.post(
        f"/v1/cases/{other['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "registered_in_error"},
    )
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    spare = await record_consent(client, network.b_hr.headers, now=clock(), purpose="rescreening")
    await client.post(f"/v1/consents/{spare['id']}/withdraw", headers=network.b_hr.headers)
    outcome = await check_person(client, network.b_hr.headers, consent["id"], REGISTERED)
    assert outcome.response.status_code == 200


async def test_members_see_their_own_counters_by_month(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    await _activity(client, network, clock)
    month = clock().strftime("%Y-%m")

    a = (await client.get("/v1/stats", headers=network.a_focal.headers)).json()
    assert a["scope"] == "organisation"
    assert [o["org_id"] for o in a["organisations"]] == [network.org_a.id]
    assert a["totals"]["cases_registered"] == 2
    assert a["totals"]["cases_withdrawn"] == 1
    # Withdrawn the day it was registered: what a fake registration (made to learn whether
    # someone was registered already) looks like to the secretariat.
    assert a["totals"]["cases_withdrawn_within_30_days"] == 1
    # keys_per_check per registration, however many keys each person had.
    assert a["totals"]["registration_evaluations"] == 2 * ctx.policy.keys_per_check
    assert a["totals"]["checks_run"] == 0
    assert [m["month"] for m in a["months"]] == [f"{clock().year}-{m:02d}" for m in range(1, 13)]
    this_month = next(m for m in a["months"] if m["month"] == month)
    assert this_month["counters"]["cases_registered"] == 2

    b = (await client.get("/v1/stats", headers=network.b_hr.headers)).json()
    assert [o["org_id"] for o in b["organisations"]] == [network.org_b.id]
    assert b["totals"]["cases_registered"] == 0
    assert b["totals"]["consents_recorded"] == 2
    assert b["totals"]["consents_recruitment"] == 1
    assert b["totals"]["consents_rescreening"] == 1
    assert b["totals"]["consents_withdrawn"] == 1
    assert b["totals"]["checks_run"] == 1
    assert b["totals"]["registration_evaluations"] == 0
    # No counter holds a count of a checked person's keys.
    assert not {name for name in b["totals"] if name.startswith("keys")}
    # Every known counter is reported, zero or not.
    assert set(b["counters"]) == {c.value for c in Counter} == set(b["totals"])


async def test_a_withdrawal_after_thirty_days_is_not_counted_as_early(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    started = clock()
    soon = await register_person(client, network.a_focal.headers, OTHER, today=clock.today())
    later = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    for case, wait in ((soon, timedelta(days=30)), (later, timedelta(seconds=1))):
        clock.advance(wait)
        await network.a_focal.refresh(client)
        response = await client.post(
            f"/v1/cases/{case['id']}/withdraw",
            headers=network.a_focal.headers,
            json={"reason": "registered_in_error"},
        )
        assert response.status_code == 200
    totals: dict[str, int] = {}
    for year in sorted({started.year, clock().year}):
        body = (await client.get(f"/v1/stats?year={year}", headers=network.a_focal.headers)).json()
        for name, value in body["totals"].items():
            totals[name] = totals.get(name, 0) + value
    assert totals["cases_withdrawn"] == 2
    # 30 days to the second is still early; a second more is not.
    assert totals["cases_withdrawn_within_30_days"] == 1


async def test_secretariat_sees_the_network_and_each_member(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    await _activity(client, network, clock)
    for actor in (network.admin, network.auditor):
        response = await client.get("/v1/stats", headers=actor.headers)
        assert response.status_code == 200
        body = response.json()
        assert body["scope"] == "network"
        assert body["totals"]["cases_registered"] == 2
        assert body["totals"]["checks_run"] == 1
        per_org = {o["short_name"]: o["totals"] for o in body["organisations"]}
        assert per_org["org-a"]["cases_registered"] == 2
        assert per_org["org-b"]["checks_run"] == 1


async def test_purges_are_counted_for_the_holder(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    await _activity(client, network, clock)
    clock.advance(days=6)
    run_sweep(ctx)
    await network.a_focal.refresh(client)
    body = (
        await client.get(f"/v1/stats?year={clock().year}", headers=network.a_focal.headers)
    ).json()
    assert body["totals"]["cases_purged"] == 1


async def test_other_years_are_separate(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    increment(session, network.org_a.id, datetime(2024, 3, 5, tzinfo=UTC), Counter.CHECKS_RUN, 7)
    session.commit()
    old = (await client.get("/v1/stats?year=2024", headers=network.a_focal.headers)).json()
    assert old["totals"]["checks_run"] == 7
    assert next(m for m in old["months"] if m["month"] == "2024-03")["counters"]["checks_run"] == 7
    now = await client.get(f"/v1/stats?year={clock().year}", headers=network.a_focal.headers)
    assert now.json()["totals"]["checks_run"] == 0


async def test_stats_need_a_statistics_permission_and_a_sane_year(
    client: AppClient, network: Network
) -> None:
    assert (await client.get("/v1/stats")).status_code == 401
    response = await client.get("/v1/stats?year=20000", headers=network.admin.headers)
    assert response.status_code == 422
