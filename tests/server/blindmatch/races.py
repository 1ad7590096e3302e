"""What the concurrency tests (consent budget, daily quotas) share: a consent committed on the
session's engine and deleted again afterwards, and running one piece of work in several
transactions started at the same moment.

These tests need transactions that really run at the same time, so they work with their own
connections, not the per-test rolled-back connection, and must clean up what they committed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from server.auth.permissions import Role
from server.checks.models import Check
from server.consents.models import Consent
from server.db import make_session_factory
from server.quotas.models import DailyUsage
from server.registry.models import Organisation, Principal
from tests.factories import make_consent, make_org, make_principal


@dataclass(frozen=True)
class Committed:
    """The committed rows' ids: an organisation, its principal, and a consent it recorded."""

    org_id: str
    principal_id: str
    consent_id: str


@contextmanager
def committed_consent(
    engine: Engine, prefix: str, roles: Iterable[Role], *, max_checks: int
) -> Iterator[Committed]:
    """Commit an organisation, a principal with `roles` and a consent for `max_checks` checks;
    on exit delete them, with the checks the organisation ran and its daily usage."""
    factory = make_session_factory(engine)
    with factory() as session:
        org = make_org(session, f"{prefix}-{uuid.uuid4().hex[:8]}")
        principal, _ = make_principal(session, org, roles)
        consent = make_consent(
            session,
            org,
            principal.id,
            applicant_ref=f"{prefix}-applicant",
            position_ref=f"{prefix}-position",
            max_checks=max_checks,
            checks_used=0,
        )
        session.commit()
        ids = Committed(org.id, principal.id, consent.id)
    try:
        yield ids
    finally:
        with factory() as session:
            session.execute(delete(Check).where(Check.org_id == ids.org_id))
            session.execute(delete(DailyUsage).where(DailyUsage.org_id == ids.org_id))
            session.execute(delete(Consent).where(Consent.id == ids.consent_id))
            session.execute(delete(Principal).where(Principal.id == ids.principal_id))
            session.execute(delete(Organisation).where(Organisation.id == ids.org_id))
            session.commit()


def race(
    sessions: Callable[[], Session],
    work: Callable[[Session], None],
    *,
    threads: int,
    refusal: type[Exception],
    labels: tuple[str, str],
) -> list[str]:
    """`work` in `threads` transactions started together; the outcomes, sorted.

    Each outcome is `labels[0]` if the transaction committed, `labels[1]` if `work` raised
    `refusal`, and the exception's class name for anything else (so an unexpected error shows
    in the assertion instead of being lost in a thread).
    """
    committed, refused = labels
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        session = sessions()
        try:
            # Wait before the first statement: on SQLite every transaction takes the write lock
            # at BEGIN, so a thread that read first would hold it through the barrier.
            barrier.wait()
            try:
                work(session)
                session.commit()
                result = committed
            except refusal:
                session.rollback()
                result = refused
        except Exception as exc:  # noqa: BLE001 - reported through `outcomes`
            session.rollback()
            result = type(exc).__name__
        finally:
            session.close()
        with lock:
            outcomes.append(result)

    started = [threading.Thread(target=one) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join(timeout=60)
    return sorted(outcomes)
