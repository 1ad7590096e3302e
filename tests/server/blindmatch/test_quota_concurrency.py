"""Concurrent requests cannot together go past a daily quota (checks, evaluated elements).

Like the budget test next to it, this needs transactions that really run at the same time, so it
works on the session's engine with its own connections (not the per-test rolled-back connection)
and deletes what it committed afterwards. It drives the quota decision the routes make (the
conditional upsert of the day's usage row), without the audit entry (a committed audit entry could
not be deleted again without breaking the chain other tests read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from server.auth.permissions import Role
from server.checks.models import Check
from server.context import AppContext
from server.db import make_session_factory, new_id
from server.errors import QuotaExceeded
from server.keys import ServerKeys
from server.policy.schema import load_policy
from server.quotas.models import DailyUsage
from server.quotas.services import day_of, take_daily
from server.settings import Settings
from tests.server.blindmatch.races import Committed, committed_consent, race

THREADS = 8


@pytest.fixture
def committed(engine: Engine) -> Iterator[Committed]:
    roles = [Role.HR_CHECKER, Role.FOCAL_POINT]
    with committed_consent(engine, "quota", roles, max_checks=THREADS) as ids:
        yield ids


def _context(
    settings: Settings, engine: Engine, server_keys: ServerKeys, **policy: int
) -> AppContext:
    shipped = load_policy(settings.policy_file)
    return AppContext(
        settings=settings,
        sessions=make_session_factory(engine),
        policy=shipped.model_copy(update=policy),
        keys=server_keys,
    )


def _race(ctx: AppContext, work: Callable[[Session], None]) -> list[str]:
    """`work` in THREADS transactions started together; each outcome "ok" or "quota"."""
    return race(ctx.sessions, work, threads=THREADS, refusal=QuotaExceeded, labels=("ok", "quota"))


def test_concurrent_checks_run_exactly_the_daily_quota(
    engine: Engine, settings: Settings, server_keys: ServerKeys, committed: Committed
) -> None:
    quota = 3
    ctx = _context(settings, engine, server_keys, daily_check_quota=quota)
    now = datetime.now(UTC)

    def check(session: Session) -> None:
        take_daily(session, ctx.policy, committed.org_id, now, checks=1)
        session.add(
            Check(
                id=new_id(),
                org_id=committed.org_id,
                consent_id=committed.consent_id,
                principal_id=committed.principal_id,
                at=now,
                key_seq=1,
            )
        )

    assert _race(ctx, check) == ["ok"] * quota + ["quota"] * (THREADS - quota)
    with ctx.sessions() as session:
        ran = session.scalar(
            select(func.count()).select_from(Check).where(Check.org_id == committed.org_id)
        )
        assert ran == quota


def test_concurrent_evaluations_stay_within_the_element_quota(
    engine: Engine, settings: Settings, server_keys: ServerKeys, committed: Committed
) -> None:
    ctx = _context(settings, engine, server_keys, daily_evaluation_quota=10)
    now = datetime.now(UTC)

    # 3 elements each: three fit in 10, the fourth would make 12.
    outcomes = _race(
        ctx, lambda session: take_daily(session, ctx.policy, committed.org_id, now, elements=3)
    )
    assert outcomes == ["ok"] * 3 + ["quota"] * (THREADS - 3)
    with ctx.sessions() as session:
        usage = session.get(DailyUsage, (committed.org_id, day_of(now)))
        assert usage is not None
        assert (usage.checks, usage.evaluated_elements) == (0, 9)
