"""The retention sweeper: what it deletes, what it records, and that it is safe to repeat or
to crash half-way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from server.audit.models import AuditEntry
from server.cases.models import Case, IdempotencyRecord, Pseudonym
from server.context import AppContext
from server.jobs import PERIODIC_JOBS, run_jobs_once
from server.quotas.models import DailyUsage
from server.quotas.services import day_of, take_daily, usage_today
from server.registry.models import OrgStatus
from server.retention.services import run_sweep
from server.stats.models import StatCounter
from tests.blindflow import register_person
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED

pytestmark = pytest.mark.anyio


def _count(session: Session, model: type[Any], *where: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _purges(session: Session) -> list[AuditEntry]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action.in_(["case.purge", "case.purge_pseudonyms"]))
            .order_by(AuditEntry.seq)
        )
    )


async def _register(
    client: AppClient, network: Network, clock: MutableClock, days: int, person: Any = REGISTERED
) -> str:
    case = await register_person(
        client,
        network.a_focal.headers,
        person,
        today=clock.today(),
        retention_until=(clock.today() + timedelta(days=days)).isoformat(),
        idempotency_key=f"reg-{days}",
    )
    case_id = case["id"]
    assert isinstance(case_id, str)
    return case_id


async def test_sweep_purges_only_cases_past_their_date_and_records_id_and_reason(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    due = await _register(client, network, clock, days=10)
    kept = await _register(client, network, clock, days=400, person=OTHER)
    clock.advance(days=10)
    assert run_sweep(ctx).total_purged == 0  # the retention date itself is still kept
    clock.advance(days=1)
    report = run_sweep(ctx)
    assert dict(report.purged) == {"retention_expired": 1}

    assert session.get(Case, due) is None
    assert _count(session, Pseudonym, Pseudonym.case_id == due) == 0
    assert _count(session, IdempotencyRecord, IdempotencyRecord.case_id == due) == 0
    assert session.get(Case, kept) is not None
    assert _count(session, Pseudonym, Pseudonym.case_id == kept) > 0

    [entry] = _purges(session)
    assert (entry.action, entry.object_type, entry.object_id) == ("case.purge", "case", due)
    assert entry.details == {"reason": "retention_expired"}
    assert entry.actor_principal_id is None and entry.actor_org_id is None
    purged = session.scalar(
        select(StatCounter.value).where(
            StatCounter.org_id == network.org_a.id, StatCounter.name == "cases_purged"
        )
    )
    assert purged == 1


async def test_second_sweep_changes_nothing(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    await _register(client, network, clock, days=1)
    clock.advance(days=2)
    assert run_sweep(ctx).total_purged == 1
    assert run_sweep(ctx).total_purged == 0
    assert len(_purges(session)) == 1


async def test_crash_half_way_leaves_everything_for_the_next_run(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    session: Session,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await _register(client, network, clock, days=1)
    second = await _register(client, network, clock, days=2, person=OTHER)
    clock.advance(days=3)
    import server.retention.services as retention

    real_append = retention.append
    calls = {"n": 0}

    def append_then_crash(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(retention, "append", append_then_crash)
    with pytest.raises(RuntimeError):
        run_sweep(ctx)
    # Nothing purged without its audit entry: the half-done sweep rolled back entirely.
    assert session.get(Case, first) is not None and session.get(Case, second) is not None
    assert _purges(session) == []

    monkeypatch.setattr(retention, "append", real_append)
    assert run_sweep(ctx).total_purged == 2
    assert {e.object_id for e in _purges(session)} == {first, second}


@pytest.mark.parametrize(("policy", "purged"), [("purge", True), ("keep_until_retention", False)])
async def test_withdrawn_members_cases_follow_the_policy(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    session: Session,
    ctx: AppContext,
    policy: str,
    purged: bool,
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"withdrawn_org_cases": policy})
    case_id = await _register(client, network, clock, days=400)
    network.org_a.status = OrgStatus.WITHDRAWN
    session.commit()
    report = run_sweep(ctx)
    assert (session.get(Case, case_id) is None) is purged
    if purged:
        assert dict(report.purged) == {"org_withdrawn": 1}
        assert _purges(session)[0].details == {"reason": "org_withdrawn"}


async def test_suspended_members_cases_are_kept(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    case_id = await _register(client, network, clock, days=400)
    network.org_a.status = OrgStatus.SUSPENDED
    session.commit()
    assert run_sweep(ctx).total_purged == 0
    assert session.get(Case, case_id) is not None


async def test_pseudonyms_left_on_a_withdrawn_case_are_deleted(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    """Withdrawal deletes pseudonyms at once; a row marked withdrawn some other way (an old
    version, a manual correction) still loses its pseudonyms at the next sweep."""
    case_id = await _register(client, network, clock, days=400)
    case = session.get(Case, case_id)
    assert case is not None
    case.status = "withdrawn"
    session.commit()
    report = run_sweep(ctx)
    assert report.withdrawn_cleaned == 1 and report.total_purged == 0
    assert _count(session, Pseudonym, Pseudonym.case_id == case_id) == 0
    assert session.get(Case, case_id) is not None
    [entry] = _purges(session)
    assert entry.action == "case.purge_pseudonyms" and entry.details == {"reason": "case_withdrawn"}


async def test_extended_retention_saves_a_case_from_the_sweep(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    case_id = await _register(client, network, clock, days=5)
    response = await client.patch(
        f"/v1/cases/{case_id}",
        headers=network.a_focal.headers,
        json={"retention_until": (clock.today() + timedelta(days=50)).isoformat()},
    )
    assert response.status_code == 200
    clock.advance(days=6)
    assert run_sweep(ctx).total_purged == 0


async def test_sweep_runs_as_a_periodic_job(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    assert "retention-sweep" in [job.name for job in PERIODIC_JOBS]
    case_id = await _register(client, network, clock, days=1)
    clock.advance(days=2)
    results = run_jobs_once(ctx)
    assert results["retention-sweep"] is True
    assert session.get(Case, case_id) is None


def test_cli_runs_a_sweep(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from server.cli import app

    runner = CliRunner()
    monkeypatch.delenv("REFCHECK_DATABASE_URL", raising=False)
    data_dir = tmp_path / "var"
    init = runner.invoke(app, ["init", "--data-dir", str(data_dir)])
    assert init.exit_code == 0, init.output
    result = runner.invoke(app, ["retention", "run", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "retention sweep: 0 case(s) purged" in result.output
    assert "0 ended disclosure request(s) purged" in result.output
    assert "old daily-quota row(s) deleted" in result.output


async def test_sweep_keeps_only_todays_and_yesterdays_quota_usage(
    network: Network, ctx: AppContext, clock: MutableClock, session: Session
) -> None:
    now = clock()
    for days_ago in (0, 1, 2, 30):
        take_daily(session, ctx.policy, network.org_b.id, now - timedelta(days=days_ago), checks=1)
    session.commit()
    report = run_sweep(ctx)
    assert report.daily_usage_pruned == 2
    session.expire_all()
    kept = sorted(u.day for u in session.scalars(select(DailyUsage)))
    assert kept == sorted(day_of(now - timedelta(days=d)) for d in (0, 1))
    # The quota still sees today's use.
    assert usage_today(session, network.org_b.id, now).checks == 1
