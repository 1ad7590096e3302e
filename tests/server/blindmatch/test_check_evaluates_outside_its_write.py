"""A check evaluates outside its write transaction (issue 17), and the write re-checks what may
have changed while the key worked.

`_run_check` reads its controls first (a read that takes no lock on SQLite), then runs
`blind_evaluate` with no write transaction open, then writes: the MoU again, the key in force
again, the quota, the consent's budget (withdrawal and expiry in the conditional update that
spends it), the check and its audit entry. These tests change the world *while the key works*,
by wrapping `server.checks.services.blind_evaluate`, and pin that the write refuses what the
change rules out and records nothing of a check that ran; then, on a real database with real
connections, that another connection takes the write lock (SQLite) or the organisation's
`daily_usage` and the consent rows (PostgreSQL) at once while the key works.

In the in-process tests the test's `session` shares the app's connection (`tests/conftest.py`):
the change made inside the wrapper lands in the request's SAVEPOINT, so the refusal's rollback
undoes it again. That is an artefact of the test setup: what is pinned is what the request's
write saw and what it left behind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

import server.checks.services as checks
from protocol.identity import derive_keys
from server.audit.models import AuditEntry
from server.checks.models import Check
from server.consents.models import Consent
from server.context import AppContext
from server.keys import create_keys
from server.oprf.rotation import rotate
from server.registry.models import OrgStatus
from tests.blindflow import build_check_request, fetch_key, record_consent
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER
from tests.server.blindmatch.test_refused_checks import _body, _consent, _refused_entries, _type
from tests.server.live import (
    BACKENDS,
    LiveDatabase,
    app_for,
    backend_database,
    client,
    live_server,
)

pytestmark = pytest.mark.anyio

Evaluate = Callable[..., tuple[list[bytes], bytes]]


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A data directory of this test's own (overrides the session's shared one): a rotation
    writes key files."""
    create_keys(tmp_path / "server")
    return tmp_path


def _while_the_key_works(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> list[int]:
    """Make `change` happen inside the check's evaluation, just before the key works; answers
    the list of evaluations that ran (their element counts)."""
    real: Evaluate = checks.blind_evaluate
    calls: list[int] = []

    def wrapped(ctx_: AppContext, blinded: Any, *args: Any, **kwargs: Any) -> Any:
        change()
        calls.append(len(blinded))
        return real(ctx_, blinded, *args, **kwargs)

    monkeypatch.setattr(checks, "blind_evaluate", wrapped)
    return calls


def _run_entries(session: Session, consent_id: str) -> list[AuditEntry]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "check.run", AuditEntry.object_id == consent_id
            )
        )
    )


def _checks_stored(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Check)) or 0


def _checks_used(session: Session, consent_id: str) -> int:
    session.expire_all()
    consent = session.get(Consent, consent_id)
    assert consent is not None
    return consent.checks_used


async def _prepared(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> tuple[str, dict[str, Any]]:
    """A consent of org-b's HR account and a check body for it; the test's session ends its
    transaction, so that the change made inside the evaluation nests in the request's."""
    consent_id = await _consent(client, network, clock)
    body = await _body(client, network, consent_id)
    session.commit()
    return consent_id, body


async def test_a_consent_withdrawn_while_the_key_works_stops_the_check_and_records_no_run(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consent_id, body = await _prepared(client, network, clock, session)
    stored_before = _checks_stored(session)
    session.commit()

    def withdraw() -> None:
        consent = session.get(Consent, consent_id)
        assert consent is not None and consent.withdrawn_at is None
        consent.withdrawn_at = clock()
        session.flush()
        session.commit()  # releases the test session's own SAVEPOINT inside the request's

    calls = _while_the_key_works(monkeypatch, withdraw)
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)

    assert calls == [len(body["blinded_elements"])]  # the controls had passed: the key worked
    assert response.status_code == 409, response.text
    assert _type(response) == "consent-withdrawn"
    assert _checks_stored(session) == stored_before
    assert _checks_used(session, consent_id) == 0
    assert _run_entries(session, consent_id) == []
    [refused] = _refused_entries(session)
    assert (refused.object_type, refused.object_id) == ("consent", consent_id)
    assert refused.details == {"problem": "consent-withdrawn"}


async def test_the_same_check_without_a_change_while_the_key_works_runs_and_is_recorded(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The counter-case of the refusals below: the wrapper alone changes nothing."""
    consent_id, body = await _prepared(client, network, clock, session)
    stored_before = _checks_stored(session)
    session.commit()

    calls = _while_the_key_works(monkeypatch, lambda: None)
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)

    assert response.status_code == 200, response.text
    assert calls == [len(body["blinded_elements"])]
    assert _checks_stored(session) == stored_before + 1
    assert _checks_used(session, consent_id) == 1
    assert len(_run_entries(session, consent_id)) == 1
    assert _refused_entries(session) == []


def _suspend(network: Network, today: date) -> None:
    network.org_b.status = OrgStatus.SUSPENDED


def _end_mou(network: Network, today: date) -> None:
    network.org_b.mou_expires_on = today - timedelta(days=1)


@pytest.mark.parametrize(
    "end_it", [pytest.param(_suspend, id="suspended"), pytest.param(_end_mou, id="mou-ended")]
)
async def test_an_mou_suspended_or_ended_while_the_key_works_stops_the_check(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    end_it: Callable[[Network, date], None],
) -> None:
    consent_id, body = await _prepared(client, network, clock, session)
    stored_before = _checks_stored(session)
    session.commit()

    def change() -> None:
        end_it(network, clock.today())
        session.flush()
        session.commit()

    calls = _while_the_key_works(monkeypatch, change)
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)

    assert len(calls) == 1
    assert response.status_code == 403, response.text
    assert _type(response) == "mou-inactive"
    assert _checks_stored(session) == stored_before
    assert _checks_used(session, consent_id) == 0
    assert _run_entries(session, consent_id) == []
    [refused] = _refused_entries(session)
    assert refused.details == {"problem": "mou-inactive"}


async def test_a_key_rotated_while_the_key_works_answers_key_mismatch_and_stores_no_check(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    ctx: AppContext,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consent_id, body = await _prepared(client, network, clock, session)
    old_key_id = body["key_id"]
    stored_before = _checks_stored(session)
    session.commit()
    rotated: list[str] = []

    def rotate_now() -> None:
        rotated.append(rotate(ctx).new_key_id)

    calls = _while_the_key_works(monkeypatch, rotate_now)
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)

    [new_key_id] = rotated
    assert new_key_id != old_key_id
    assert len(calls) == 1
    assert response.status_code == 409, response.text
    assert _type(response) == "key-mismatch"
    # The write read the key in force again: the new one, not the one the key worked with.
    assert new_key_id in response.json()["detail"]
    # No check under the old key (evaluated with it) nor the new one.
    assert _checks_stored(session) == stored_before
    assert _checks_used(session, consent_id) == 0
    assert _run_entries(session, consent_id) == []
    [refused] = _refused_entries(session)
    assert refused.details == {"problem": "key-mismatch"}


# --- on a real database, with real connections ------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend_db(
    request: pytest.FixtureRequest, tmp_path: Path, key_dir: Path
) -> Iterator[LiveDatabase]:
    with backend_database(request.param, tmp_path, key_dir) as db:
        yield db


@dataclass(frozen=True)
class Probe:
    """What a fresh connection got when it asked, without waiting, for what a check's write
    locks: `locked` if it could not have it; else the rows it locked (PostgreSQL)."""

    locked: bool
    rows: int = 0


def _probe(db: LiveDatabase, org_id: str, consent_id: str) -> Probe:
    """From a connection of its own: on SQLite `BEGIN IMMEDIATE` with no busy timeout; on
    PostgreSQL the organisation's `daily_usage` rows and the consent's row `FOR UPDATE NOWAIT`.
    Whatever it got is released before it answers."""
    if db.url.startswith("sqlite"):
        path = make_url(db.url).database
        assert path
        raw = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc) or "busy" in str(exc), exc
            return Probe(locked=True)
        else:
            raw.execute("ROLLBACK")
            return Probe(locked=False)
        finally:
            raw.close()
    engine = create_engine(db.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            try:
                usage = conn.execute(
                    text("SELECT org_id FROM daily_usage WHERE org_id = :org FOR UPDATE NOWAIT"),
                    {"org": org_id},
                ).all()
                consent = conn.execute(
                    text("SELECT id FROM consents WHERE id = :id FOR UPDATE NOWAIT"),
                    {"id": consent_id},
                ).all()
            except OperationalError as exc:
                assert getattr(exc.orig, "sqlstate", None) == "55P03", exc  # lock_not_available
                return Probe(locked=True)
            finally:
                conn.rollback()
            return Probe(locked=False, rows=len(usage) + len(consent))
    finally:
        engine.dispose()


def _rows(db: LiveDatabase) -> int:
    """The rows a free probe locks: none on SQLite (it takes the write lock), the
    `daily_usage` row and the consent's on PostgreSQL."""
    return 0 if db.url.startswith("sqlite") else 2


async def _consent_and_body(http: Any, db: LiveDatabase) -> tuple[str, dict[str, Any]]:
    headers = db.members["b_hr"].headers
    consent = await record_consent(http, headers, now=datetime.now(UTC))
    server_key = await fetch_key(http, headers)
    _batch, body = build_check_request(server_key, consent["id"], derive_keys(OTHER))
    return str(consent["id"]), body


@pytest.mark.slow
async def test_while_the_key_works_another_connection_takes_the_write_lock_at_once(
    backend_db: LiveDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = backend_db
    b_hr = db.members["b_hr"]
    probes: list[Probe] = []
    real: Evaluate = checks.blind_evaluate
    probing: dict[str, str] = {}

    def probed(ctx_: AppContext, blinded: Any, *args: Any, **kwargs: Any) -> Any:
        if probing:
            probes.append(_probe(db, b_hr.org_id, probing["consent_id"]))
        return real(ctx_, blinded, *args, **kwargs)

    monkeypatch.setattr(checks, "blind_evaluate", probed)
    with live_server(app_for(db)) as base_url:
        async with client(base_url) as http:
            # A first check, unprobed, so that org-b's `daily_usage` row of today exists and
            # the PostgreSQL probe has a row to lock.
            _first_id, first = await _consent_and_body(http, db)
            warm = await http.post("/v1/checks", headers=b_hr.headers, json=first)
            assert warm.status_code == 200, warm.text
            consent_id, body = await _consent_and_body(http, db)
            probing["consent_id"] = consent_id
            response = await http.post("/v1/checks", headers=b_hr.headers, json=body)
    assert response.status_code == 200, response.text
    [probe] = probes
    assert not probe.locked
    if not db.url.startswith("sqlite"):
        assert probe.rows == 2  # today's daily_usage row and the consent's: both were there


@pytest.mark.slow
async def test_a_withdrawal_committed_by_another_connection_while_the_key_works_stops_the_check(
    backend_db: LiveDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-process test above shares the app's connection; here the withdrawal is committed
    by a connection of its own, so the check's write must see a change committed after its
    controls read the consent (SQLite: a new transaction; PostgreSQL: READ COMMITTED)."""
    db = backend_db
    b_hr = db.members["b_hr"]
    real: Evaluate = checks.blind_evaluate
    withdrawing: dict[str, str] = {}

    def withdrawn_meanwhile(ctx_: AppContext, blinded: Any, *args: Any, **kwargs: Any) -> Any:
        with Session(db.engine) as other:
            other.execute(
                update(Consent)
                .where(Consent.id == withdrawing["consent_id"])
                .values(withdrawn_at=datetime.now(UTC))
            )
            other.commit()
        return real(ctx_, blinded, *args, **kwargs)

    monkeypatch.setattr(checks, "blind_evaluate", withdrawn_meanwhile)
    with live_server(app_for(db)) as base_url:
        async with client(base_url) as http:
            consent_id, body = await _consent_and_body(http, db)
            withdrawing["consent_id"] = consent_id
            response = await http.post("/v1/checks", headers=b_hr.headers, json=body)
    assert response.status_code == 409, response.text
    assert _type(response) == "consent-withdrawn"
    with Session(db.engine) as session:
        assert _checks_stored(session) == 0
        assert _checks_used(session, consent_id) == 0
        assert _run_entries(session, consent_id) == []
        [refused] = _refused_entries(session)
        assert refused.object_id == consent_id


@pytest.mark.slow
async def test_the_probe_reports_locked_while_another_connection_holds_a_write(
    backend_db: LiveDatabase,
) -> None:
    """The probe above can fail: with a write open on another connection (SQLite's write lock;
    the rows a check's write locks on PostgreSQL), it answers `locked` at once."""
    db = backend_db
    b_hr = db.members["b_hr"]
    with live_server(app_for(db)) as base_url:
        async with client(base_url) as http:
            consent_id, body = await _consent_and_body(http, db)
            ran = await http.post("/v1/checks", headers=b_hr.headers, json=body)
            assert ran.status_code == 200, ran.text
    assert _probe(db, b_hr.org_id, consent_id) == Probe(locked=False, rows=_rows(db))
    with db.engine.connect() as holder:
        if db.url.startswith("sqlite"):
            holder.exec_driver_sql("UPDATE consents SET checks_used = checks_used")
        else:
            holder.execute(
                text("UPDATE daily_usage SET checks = checks WHERE org_id = :org"),
                {"org": b_hr.org_id},
            )
            holder.execute(
                text("UPDATE consents SET checks_used = checks_used WHERE id = :id"),
                {"id": consent_id},
            )
        try:
            assert _probe(db, b_hr.org_id, consent_id) == Probe(locked=True)
        finally:
            holder.rollback()
    assert _probe(db, b_hr.org_id, consent_id).locked is False


@pytest.mark.slow
async def test_the_probe_reports_locked_inside_the_checks_own_write(
    backend_db: LiveDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run where the evaluation used to run (after the budget is spent, in the write), the same
    probe finds the lock taken: an evaluation moved back into the write fails the test above."""
    db = backend_db
    b_hr = db.members["b_hr"]
    probes: list[Probe] = []
    real_spend = checks._spend_one_check

    def spend_then_probe(session: Session, caller: Any, consent_id: str, today: Any) -> None:
        real_spend(session, caller, consent_id, today)
        probes.append(_probe(db, b_hr.org_id, consent_id))

    monkeypatch.setattr(checks, "_spend_one_check", spend_then_probe)
    with live_server(app_for(db)) as base_url:
        async with client(base_url) as http:
            consent_id, body = await _consent_and_body(http, db)
            response = await http.post("/v1/checks", headers=b_hr.headers, json=body)
    assert response.status_code == 200, response.text
    assert probes == [Probe(locked=True)]
    assert _probe(db, b_hr.org_id, consent_id).locked is False  # committed: free again
