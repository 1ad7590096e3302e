"""Concurrent checks under one consent cannot overspend its budget.

This test needs transactions that really run at the same time, so it works on the session's
engine with its own connections (not the per-test rolled-back connection) and deletes what it
committed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server.auth.permissions import Role
from server.auth.tokens import Caller
from server.checks.services import _spend_one_check
from server.consents.errors import ConsentExhausted
from server.consents.models import Consent
from server.db import make_session_factory
from tests.server.blindmatch.races import Committed, committed_consent, race

THREADS = 8
BUDGET = 3


@pytest.fixture
def committed(engine: Engine) -> Iterator[Committed]:
    with committed_consent(engine, "race", [Role.HR_CHECKER], max_checks=BUDGET) as ids:
        yield ids


def test_concurrent_checks_spend_exactly_the_budget(engine: Engine, committed: Committed) -> None:
    factory = make_session_factory(engine)

    caller = Caller(committed.principal_id, committed.org_id, frozenset({Role.HR_CHECKER}))

    def spend(session: Session) -> None:
        _spend_one_check(session, caller, committed.consent_id, date.today())

    outcomes = race(
        factory, spend, threads=THREADS, refusal=ConsentExhausted, labels=("spent", "exhausted")
    )
    assert outcomes == ["exhausted"] * (THREADS - BUDGET) + ["spent"] * BUDGET
    with factory() as session:
        consent = session.get(Consent, committed.consent_id)
        assert consent is not None and consent.checks_used == BUDGET
