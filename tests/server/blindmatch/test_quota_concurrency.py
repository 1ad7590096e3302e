"""Concurrent requests cannot together go past a daily quota (checks, evaluated elements).

Like the budget test next to it, this needs transactions that really run at the same time, so it
works on the session's engine with its own connections (not the per-test rolled-back connection)
and deletes what it committed afterwards. It drives the quota decision the routes make under the
organisation's row lock, without the audit entry (a committed audit entry could not be deleted
again without breaking the chain other tests read).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from server.auth.permissions import Role
from server.auth.tokens import Caller
from server.checks.models import Check
from server.checks.services import _enforce_quota
from server.consents.models import Consent
from server.context import AppContext
from server.db import make_session_factory, new_id
from server.errors import QuotaExceeded
from server.keys import ServerKeys
from server.oprf.evaluations import take_from_quota
from server.oprf.models import OprfEvaluation
from server.policy.schema import load_policy
from server.registry.models import Organisation, Principal
from server.settings import Settings
from tests.factories import make_org, make_principal

THREADS = 8


@dataclass(frozen=True)
class Committed:
    org_id: str
    principal_id: str
    consent_id: str


@pytest.fixture
def committed(engine: Engine) -> Iterator[Committed]:
    factory = make_session_factory(engine)
    with factory() as session:
        org = make_org(session, f"quota-{uuid.uuid4().hex[:8]}")
        principal, _ = make_principal(session, org, [Role.HR_CHECKER, Role.FOCAL_POINT])
        consent = Consent(
            org_id=org.id,
            recorded_by=principal.id,
            applicant_ref="quota-applicant",
            purpose="recruitment",
            position_ref="quota-position",
            form_sha256="ef" * 32,
            self_declared_finding=False,
            consented_at=datetime.now(UTC),
            expires_on=date.today() + timedelta(days=30),
            max_checks=THREADS,
            checks_used=0,
            lookup_code_sha256=uuid.uuid4().hex * 2,
        )
        session.add(consent)
        session.commit()
        ids = Committed(org.id, principal.id, consent.id)
    try:
        yield ids
    finally:
        with factory() as session:
            session.execute(delete(Check).where(Check.org_id == ids.org_id))
            session.execute(delete(OprfEvaluation).where(OprfEvaluation.org_id == ids.org_id))
            session.execute(delete(Consent).where(Consent.id == ids.consent_id))
            session.execute(delete(Principal).where(Principal.id == ids.principal_id))
            session.execute(delete(Organisation).where(Organisation.id == ids.org_id))
            session.commit()


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
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        session = ctx.sessions()
        try:
            # Wait before the first statement: on SQLite every transaction takes the write lock
            # at BEGIN, so a thread that read first would hold it through the barrier.
            barrier.wait()
            try:
                work(session)
                session.commit()
                result = "ok"
            except QuotaExceeded:
                session.rollback()
                result = "quota"
        except Exception as exc:  # noqa: BLE001 - reported through `outcomes`
            session.rollback()
            result = type(exc).__name__
        finally:
            session.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return sorted(outcomes)


def test_concurrent_checks_run_exactly_the_daily_quota(
    engine: Engine, settings: Settings, server_keys: ServerKeys, committed: Committed
) -> None:
    quota = 3
    ctx = _context(settings, engine, server_keys, daily_check_quota=quota)
    now = datetime.now(UTC)

    def check(session: Session) -> None:
        _enforce_quota(session, ctx, committed.org_id, now, lock=True)
        session.add(
            Check(
                id=new_id(),
                org_id=committed.org_id,
                consent_id=committed.consent_id,
                principal_id=committed.principal_id,
                at=now,
                key_count=1,
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
    caller = Caller(
        principal_id=committed.principal_id,
        org_id=committed.org_id,
        roles=frozenset({Role.FOCAL_POINT}),
    )
    now = datetime.now(UTC)

    # 3 elements each: three fit in 10, the fourth would make 12.
    outcomes = _race(ctx, lambda session: take_from_quota(session, ctx, caller, 3, now))
    assert outcomes == ["ok"] * 3 + ["quota"] * (THREADS - 3)
    with ctx.sessions() as session:
        used = session.scalar(
            select(func.sum(OprfEvaluation.element_count)).where(
                OprfEvaluation.org_id == committed.org_id
            )
        )
        assert used == 9
