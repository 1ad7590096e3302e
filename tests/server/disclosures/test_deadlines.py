"""Response deadlines with a controllable clock: overdue is shown to the holder, the requester
and the secretariat, counted once, and stale requests expire."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.context import AppContext
from server.db import transaction
from server.disclosures.deadlines import DeadlineReport, run_deadlines
from server.stats.services import Counter, figures
from tests.factories import AppClient, Network
from tests.server.disclosures.conftest import Matched, answer_request, ok, open_request

pytestmark = pytest.mark.anyio


def deadlines(ctx: AppContext) -> DeadlineReport:
    """The periodic job, in its own transaction as the runner gives it."""
    with transaction(ctx.sessions) as session:
        return run_deadlines(session, ctx)


async def refresh(client: AppClient, network: Network) -> None:
    for actor in network.actors.values():
        await actor.refresh(client)


def overdue_count(session, ctx: AppContext, org_id: str, year: int) -> int:
    session.expire_all()
    return figures(session, year, org_id=org_id)[org_id].totals[
        Counter.DISCLOSURE_REQUESTS_OVERDUE.value
    ]


async def test_request_past_its_deadline_is_flagged_to_holder_requester_and_secretariat(
    client: AppClient, network: Network, matched: Matched, clock, ctx
) -> None:
    request = await open_request(client, network, matched)
    days = ctx.policy.disclosure_response_deadline_days
    params = {"overdue": "true"}

    clock.advance(days=days, seconds=-60)
    await refresh(client, network)
    for actor in (network.a_focal, network.b_hr, network.admin):
        listed = ok(
            await client.get("/v1/disclosure-requests", params=params, headers=actor.headers)
        )
        assert listed["items"] == [], actor.principal.name

    clock.advance(seconds=120)
    await refresh(client, network)
    holder = ok(
        await client.get("/v1/disclosure-requests", params=params, headers=network.a_focal.headers)
    )
    requester = ok(
        await client.get("/v1/disclosure-requests", params=params, headers=network.b_hr.headers)
    )
    for listed in (holder, requester):
        assert [i["id"] for i in listed["items"]] == [request["id"]]
        assert listed["items"][0]["overdue"] is True
    admin = ok(
        await client.get("/v1/disclosure-requests", params=params, headers=network.admin.headers)
    )
    (item,) = admin["items"]
    assert item["role"] == "oversight"
    assert item["id"] == request["id"]
    assert item["holder_org"] == "org-a" and item["requester_org"] == "org-b"
    assert item["due_at"] == request["due_at"]
    # Metadata only: no record, consent or ciphertext for the secretariat.
    for hidden in (
        "case_id",
        "entry_id",
        "consent_id",
        "sealed_applicant_details",
        "sealed_answer",
        "outcome",
    ):
        assert item[hidden] is None, hidden


async def test_deadline_job_counts_each_overdue_request_once_then_expires_it(
    client: AppClient, network: Network, matched: Matched, clock, ctx, session
) -> None:
    request = await open_request(client, network, matched)
    due_year = datetime.fromisoformat(request["due_at"]).year
    assert deadlines(ctx) == DeadlineReport(flagged_overdue=0, expired=0)

    clock.advance(days=ctx.policy.disclosure_response_deadline_days, hours=1)
    assert deadlines(ctx) == DeadlineReport(flagged_overdue=1, expired=0)
    assert deadlines(ctx) == DeadlineReport(flagged_overdue=0, expired=0)
    assert overdue_count(session, ctx, network.org_a.id, due_year) == 1
    assert overdue_count(session, ctx, network.org_b.id, due_year) == 0

    clock.advance(days=ctx.policy.disclosure_expiry_days_after_due)
    assert deadlines(ctx) == DeadlineReport(flagged_overdue=0, expired=1)
    assert overdue_count(session, ctx, network.org_a.id, due_year) == 1
    await refresh(client, network)
    view = ok(
        await client.get(f"/v1/disclosure-requests/{request['id']}", headers=network.b_hr.headers)
    )
    assert view["state"] == "expired" and view["close_reason"] == "deadline_passed"
    assert view["overdue"] is False  # final: nobody is waiting any more

    from tests.server.disclosures.conftest import sealed_answer_hex

    late = await client.post(
        f"/v1/disclosure-requests/{request['id']}/answer",
        headers=network.a_focal.headers,
        json={"sealed_answer": sealed_answer_hex(request, network.org_a_keys, network.org_b_keys)},
    )
    assert late.status_code == 409 and late.json()["state"] == "expired"

    actions = list(
        session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.object_id == request["id"])
            .order_by(AuditEntry.seq)
        )
    )
    assert actions == ["disclosure.request", "disclosure.overdue", "disclosure.expire"]


async def test_late_answer_is_accepted_and_counted_overdue_once(
    client: AppClient, network: Network, matched: Matched, clock, ctx, session
) -> None:
    request = await open_request(client, network, matched)
    due_year = datetime.fromisoformat(request["due_at"]).year
    clock.advance(days=ctx.policy.disclosure_response_deadline_days + 1)
    await refresh(client, network)
    answered = await answer_request(client, network, request)
    assert answered["state"] == "answered"
    assert overdue_count(session, ctx, network.org_a.id, due_year) == 1
    # The job finds it answered and flagged already: nothing more to count.
    assert deadlines(ctx) == DeadlineReport(flagged_overdue=0, expired=0)
    assert overdue_count(session, ctx, network.org_a.id, due_year) == 1


async def test_answer_within_the_deadline_is_never_overdue(
    client: AppClient, network: Network, matched: Matched, clock, ctx, session
) -> None:
    request = await open_request(client, network, matched)
    clock.advance(days=ctx.policy.disclosure_response_deadline_days - 1)
    await refresh(client, network)
    await answer_request(client, network, request)
    clock.advance(days=ctx.policy.disclosure_expiry_days_after_due + 5)
    assert deadlines(ctx) == DeadlineReport(flagged_overdue=0, expired=0)
    due_year = datetime.fromisoformat(request["due_at"]).year
    assert overdue_count(session, ctx, network.org_a.id, due_year) == 0


async def test_deadline_is_fixed_when_the_request_is_made(
    client: AppClient, network: Network, matched: Matched, ctx
) -> None:
    request = await open_request(client, network, matched)
    ctx.policy = ctx.policy.model_copy(update={"disclosure_response_deadline_days": 1})
    view = ok(
        await client.get(
            f"/v1/disclosure-requests/{request['id']}", headers=network.a_focal.headers
        )
    )
    assert view["due_at"] == request["due_at"]
