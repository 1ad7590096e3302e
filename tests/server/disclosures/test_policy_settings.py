"""The disclosure settings of the network policy: when unanswered requests expire, and how long
the metadata of ended requests is kept before the retention sweep deletes it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from server.context import AppContext
from server.db import transaction
from server.disclosures.deadlines import DeadlineReport, run_deadlines
from server.disclosures.models import DisclosureRequest
from server.retention.services import run_sweep
from server.stats.services import figures
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.disclosures.conftest import (
    Matched,
    answer_request,
    match,
    ok,
    open_request,
    request_under_new_consent,
)

pytestmark = pytest.mark.anyio

RETENTION_DAYS = 5


def deadlines(ctx: AppContext) -> DeadlineReport:
    with transaction(ctx.sessions) as session:
        return run_deadlines(session, ctx)


async def refresh(client: AppClient, network: Network) -> None:
    for actor in network.actors.values():
        await actor.refresh(client)


def purges(session: Session) -> list[AuditEntry]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "disclosure.purge")
            .order_by(AuditEntry.seq)
        )
    )


def exists(session: Session, request: dict[str, Any]) -> bool:
    session.expire_all()
    return session.get(DisclosureRequest, request["id"]) is not None


async def test_unanswered_requests_expire_the_policys_days_after_due(
    client: AppClient, network: Network, matched: Matched, clock: MutableClock, ctx: AppContext
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"disclosure_expiry_days_after_due": 3})
    request = await open_request(client, network, matched)
    clock.advance(days=ctx.policy.disclosure_response_deadline_days + 3, seconds=-60)
    assert deadlines(ctx) == DeadlineReport(flagged_overdue=1, expired=0)
    clock.advance(seconds=120)
    assert deadlines(ctx) == DeadlineReport(flagged_overdue=0, expired=1)
    await refresh(client, network)
    view = ok(
        await client.get(f"/v1/disclosure-requests/{request['id']}", headers=network.b_hr.headers)
    )
    assert view["state"] == "expired"


async def test_ended_requests_are_purged_after_the_retention_days_open_ones_never(
    client: AppClient,
    network: Network,
    matched: Matched,
    clock: MutableClock,
    ctx: AppContext,
    session: Session,
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"disclosure_record_retention_days": RETENTION_DAYS})
    ended = await open_request(client, network, matched)
    ok(
        await client.post(
            f"/v1/disclosure-requests/{ended['id']}/withdraw", headers=network.b_hr.headers
        )
    )
    still_open, _ = await request_under_new_consent(client, network, matched)
    answered, _ = await request_under_new_consent(client, network, matched)
    await answer_request(client, network, answered)
    year = int(ended["created_at"][:4])
    made_before = figures(session, year, org_id=network.org_b.id)[network.org_b.id]

    clock.advance(days=RETENTION_DAYS, seconds=-60)
    assert run_sweep(ctx).disclosure_requests_purged == 0
    assert exists(session, ended)

    clock.advance(seconds=120)
    report = run_sweep(ctx)
    assert report.disclosure_requests_purged == 1 and report.total_purged == 0
    assert not exists(session, ended)
    # Unanswered and answered requests are not ended, however old.
    assert exists(session, still_open) and exists(session, answered)
    [entry] = purges(session)
    assert (entry.object_type, entry.object_id) == ("disclosure_request", ended["id"])
    assert entry.details == {"reason": "retention_expired"}
    assert entry.actor_principal_id is None and entry.actor_org_id is None
    # The yearly figures are counters: deleting the row does not change them.
    session.expire_all()
    made_after = figures(session, year, org_id=network.org_b.id)
    assert made_after[network.org_b.id].totals == made_before.totals
    # A second sweep has nothing left to do.
    assert run_sweep(ctx).disclosure_requests_purged == 0
    assert len(purges(session)) == 1


async def test_purged_request_leaves_the_applicants_lookup(
    client: AppClient,
    network: Network,
    matched: Matched,
    clock: MutableClock,
    ctx: AppContext,
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"disclosure_record_retention_days": RETENTION_DAYS})
    request = await open_request(client, network, matched)
    ok(
        await client.post(
            f"/v1/disclosure-requests/{request['id']}/withdraw", headers=network.b_hr.headers
        )
    )
    code = matched.consent["lookup_code"]
    before = ok(await client.get(f"/v1/consent-lookup/{code}", headers=network.b_hr.headers))
    assert [r["state"] for r in before["disclosure_requests"]] == ["withdrawn"]
    clock.advance(days=RETENTION_DAYS + 1)
    run_sweep(ctx)
    await refresh(client, network)
    after = ok(await client.get(f"/v1/consent-lookup/{code}", headers=network.b_hr.headers))
    assert after["disclosure_requests"] == []
    assert len(after["checks"]) == len(before["checks"])


async def test_request_closed_by_a_case_purge_waits_its_own_retention_days(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    ctx: AppContext,
    session: Session,
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"disclosure_record_retention_days": RETENTION_DAYS})
    matched = await match(
        client,
        network,
        clock.today(),
        case_overrides={"retention_until": (clock.today() + timedelta(days=1)).isoformat()},
    )
    request = await open_request(client, network, matched)
    clock.advance(days=2)
    report = run_sweep(ctx)
    assert dict(report.purged) == {"retention_expired": 1}
    assert report.disclosure_requests_purged == 0
    session.expire_all()
    row = session.get(DisclosureRequest, request["id"])
    assert row is not None and row.state == "closed" and row.close_reason == "record_purged"

    clock.advance(days=RETENTION_DAYS + 1)
    assert run_sweep(ctx).disclosure_requests_purged == 1
    assert not exists(session, request)


async def test_sweep_job_purges_ended_requests_too(
    client: AppClient,
    network: Network,
    matched: Matched,
    clock: MutableClock,
    ctx: AppContext,
    session: Session,
) -> None:
    from server.jobs import run_jobs_once

    ctx.policy = ctx.policy.model_copy(update={"disclosure_record_retention_days": RETENTION_DAYS})
    request = await open_request(client, network, matched)
    ok(
        await client.post(
            f"/v1/disclosure-requests/{request['id']}/withdraw", headers=network.b_hr.headers
        )
    )
    clock.advance(days=RETENTION_DAYS + 1)
    assert run_jobs_once(ctx)["retention-sweep"] is True
    assert not exists(session, request)
