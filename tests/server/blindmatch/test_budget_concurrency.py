"""Concurrent checks under one consent cannot overspend its budget.

This test needs transactions that really run at the same time, so it works on the session's
engine with its own connections (not the per-test rolled-back connection) and deletes what it
committed afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from server.auth.permissions import Role
from server.checks.services import _spend_one_check
from server.consents.errors import ConsentExhausted
from server.consents.models import Consent
from server.db import make_session_factory
from server.registry.models import Organisation, Principal
from tests.factories import make_org, make_principal

THREADS = 8
BUDGET = 3


@pytest.fixture
def committed_consent(engine: Engine) -> Iterator[str]:
    factory = make_session_factory(engine)
    with factory() as session:
        org = make_org(session, f"race-{uuid.uuid4().hex[:8]}")
        principal, _ = make_principal(session, org, [Role.HR_CHECKER])
        consent = Consent(
            org_id=org.id,
            recorded_by=principal.id,
            applicant_ref="race-applicant",
            purpose="recruitment",
            position_ref="race-position",
            form_sha256="cd" * 32,
            self_declared_finding=False,
            consented_at=datetime.now(UTC),
            expires_on=date.today() + timedelta(days=30),
            max_checks=BUDGET,
            checks_used=0,
            lookup_code_sha256=uuid.uuid4().hex * 2,
        )
        session.add(consent)
        session.commit()
        ids = (org.id, principal.id, consent.id)
    try:
        yield ids[2]
    finally:
        with factory() as session:
            session.execute(delete(Consent).where(Consent.id == ids[2]))
            session.execute(delete(Principal).where(Principal.id == ids[1]))
            session.execute(delete(Organisation).where(Organisation.id == ids[0]))
            session.commit()


def test_concurrent_checks_spend_exactly_the_budget(engine: Engine, committed_consent: str) -> None:
    factory = make_session_factory(engine)
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one_check() -> None:
        session: Session = factory()
        try:
            # Wait before the first statement: on SQLite every transaction takes the write lock
            # at BEGIN, so a thread that read first would hold it through the barrier.
            barrier.wait()
            consent = session.get(Consent, committed_consent)
            assert consent is not None
            try:
                _spend_one_check(session, consent, date.today())
                session.commit()
                result = "spent"
            except ConsentExhausted:
                session.rollback()
                result = "exhausted"
        except Exception as exc:  # noqa: BLE001 - reported through `outcomes`
            session.rollback()
            result = type(exc).__name__
        finally:
            session.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one_check) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["exhausted"] * (THREADS - BUDGET) + ["spent"] * BUDGET
    with factory() as session:
        consent = session.get(Consent, committed_consent)
        assert consent is not None and consent.checks_used == BUDGET
