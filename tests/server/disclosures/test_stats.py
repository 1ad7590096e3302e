"""The MDS yearly figures from a known set of events, per organisation and network-wide."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.db import transaction
from server.disclosures.deadlines import run_deadlines
from tests.blindflow import record_consent, register_person
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED
from tests.server.disclosures.conftest import (
    answer_request,
    match,
    ok,
    open_request,
    recheck,
    request_under_new_consent,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> MutableClock:
    # Early March, so that every event and every due date of this test falls in one year.
    return MutableClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


async def test_mds_figures_count_a_known_year_of_events(
    client: AppClient, network: Network, clock: MutableClock, ctx
) -> None:
    today = clock.today()
    # Request 1: org-b's applicant matches org-a's case; answered in time; not hired.
    first = await match(client, network, today)
    one = await open_request(client, network, first)
    await answer_request(
        client,
        network,
        one,
        same_person="confirmed",
        category="sexual_abuse",
        finding_date=today.replace(month=1),
        sanction="dismissal",
    )
    ok(
        await client.post(
            f"/v1/disclosure-requests/{one['id']}/outcome",
            headers=network.b_hr.headers,
            json={"outcome": "not_hired_disclosure"},
        )
    )
    # Request 2: another applicant, another case of org-a; never answered; hired anyway.
    second = await match(client, network, today, person=OTHER)
    two = await open_request(client, network, second)
    ok(
        await client.post(
            f"/v1/disclosure-requests/{two['id']}/outcome",
            headers=network.b_hr.headers,
            json={"outcome": "hired"},
        )
    )
    # A third recruitment at org-b with no match, one at org-a, one re-screening at org-b.
    await record_consent(client, network.b_hr.headers, now=clock())
    await record_consent(client, network.a_hr.headers, now=clock())
    await record_consent(client, network.b_hr.headers, now=clock(), purpose="rescreening")

    clock.advance(days=ctx.policy.disclosure_response_deadline_days + 1)
    with transaction(ctx.sessions) as session:
        assert run_deadlines(session, ctx).flagged_overdue == 1
    await network.admin.refresh(client)
    await network.b_hr.refresh(client)

    stats = ok(await client.get("/v1/stats", params={"year": 2026}, headers=network.admin.headers))
    by_org = {o["short_name"]: o for o in stats["organisations"]}
    assert by_org["org-b"]["mds"] == {
        "recruitments": 3,
        "requests_made": 2,
        "responses_received": 1,
        "responses_given": 0,
        "applicants_rejected": 1,
        "overdue_requests": 0,
    }
    assert by_org["org-a"]["mds"] == {
        "recruitments": 1,
        "requests_made": 0,
        "responses_received": 0,
        "responses_given": 1,
        "applicants_rejected": 0,
        "overdue_requests": 1,
    }
    assert stats["mds"] == {
        "recruitments": 4,
        "requests_made": 2,
        "responses_received": 1,
        "responses_given": 1,
        "applicants_rejected": 1,
        "overdue_requests": 1,
    }
    assert stats["totals"]["applicants_hired"] == 1
    assert stats["totals"]["disclosure_requests_received"] == 2

    own = ok(await client.get("/v1/stats", params={"year": 2026}, headers=network.b_hr.headers))
    assert own["scope"] == "organisation"
    assert own["mds"] == by_org["org-b"]["mds"]
    assert [o["short_name"] for o in own["organisations"]] == ["org-b"]
    empty = ok(await client.get("/v1/stats", params={"year": 2025}, headers=network.admin.headers))
    assert set(empty["mds"].values()) == {0}


async def test_an_applicant_matched_at_two_holders_is_one_applicant_rejected(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    today = clock.today()
    matched = await match(client, network, today)
    first = await open_request(client, network, matched)
    # The same person registered a second time (say by a second case of org-a): two requests
    # under one consent, two answers, one applicant.
    again = await register_person(client, network.a_focal.headers, REGISTERED, today=today)
    rechecked = await recheck(client, network, matched)
    other_case = rechecked.of_case(again["id"])
    body = rechecked.body(entry_id=other_case[0].handle.entry_id)
    second = ok(
        await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body), 201
    )
    assert second["id"] != first["id"]
    for request in (first, second):
        await answer_request(client, network, request)
    reported = ok(
        await client.post(
            f"/v1/disclosure-requests/{first['id']}/outcome",
            headers=network.b_hr.headers,
            json={"outcome": "not_hired_disclosure"},
        )
    )
    assert reported["outcome"] == "not_hired_disclosure"
    sibling = ok(
        await client.get(f"/v1/disclosure-requests/{second['id']}", headers=network.b_hr.headers)
    )
    assert sibling["outcome"] == "not_hired_disclosure"
    stats = ok(await client.get("/v1/stats", params={"year": 2026}, headers=network.b_hr.headers))
    assert stats["mds"]["applicants_rejected"] == 1
    assert stats["mds"]["requests_made"] == 2


async def test_not_same_person_answers_are_counted_for_the_requester_only(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    """Holders' "not the same person" answers reveal a member whose software puts other
    people's keys into its checks; a confirmation counts nothing."""
    today = clock.today()
    matched = await match(client, network, today, max_checks=3)
    denied = await open_request(client, network, matched)
    await answer_request(client, network, denied, same_person="not_same_person")
    confirmed, _consent_id = await request_under_new_consent(client, network, matched)
    await answer_request(
        client,
        network,
        confirmed,
        same_person="confirmed",
        category="sexual_abuse",
        finding_date=today.replace(month=1),
        sanction="dismissal",
    )
    stats = ok(await client.get("/v1/stats", params={"year": 2026}, headers=network.admin.headers))
    by_org = {o["short_name"]: o["totals"] for o in stats["organisations"]}
    assert by_org["org-b"]["not_same_person_answers"] == 1
    assert by_org["org-a"]["not_same_person_answers"] == 0
    assert by_org["org-b"]["disclosure_responses_received"] == 2
