"""`GET /v1/stats/retention`: live cases counted by the month their retention ends and by
member, for the secretariat (issue 14, item 5); counts only, withdrawn cases left out."""

from __future__ import annotations

from datetime import date

import pytest

from tests.factories import make_case

pytestmark = pytest.mark.anyio


async def test_live_cases_are_counted_by_retention_month_and_member(network, client, session):
    org_a, org_b = network.org_a, network.org_b
    for until in (date(2030, 1, 5), date(2030, 1, 28), date(2031, 6, 1)):
        make_case(session, org_a, network.a_focal.id, retention_until=until)
    make_case(session, org_b, network.b_focal.id, retention_until=date(2030, 1, 9))
    make_case(
        session, org_b, network.b_focal.id, retention_until=date(2029, 3, 3), status="withdrawn"
    )
    session.commit()

    for actor in (network.admin, network.auditor):
        response = await client.get("/v1/stats/retention", headers=actor.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["live_cases"] == 4
        assert body["months"] == [
            {"month": "2030-01", "live_cases": 3},
            {"month": "2031-06", "live_cases": 1},
        ]
        by_org = {o["short_name"]: o for o in body["organisations"]}
        assert by_org["org-a"]["live_cases"] == 3
        assert by_org["org-a"]["months"] == [
            {"month": "2030-01", "live_cases": 2},
            {"month": "2031-06", "live_cases": 1},
        ]
        assert by_org["org-b"]["months"] == [{"month": "2030-01", "live_cases": 1}]
        # Counts only: no case id, no day.
        text = response.text
        assert "2030-01-05" not in text and "retention_until" not in text


async def test_members_may_not_read_the_retention_overview(network, client):
    for actor in (network.a_focal, network.b_hr):
        response = await client.get("/v1/stats/retention", headers=actor.headers)
        assert response.status_code == 403
