"""Two admins deactivating each other at the same time cannot leave the network without one.

Like the quota races, this needs transactions that really run at the same time, so it works on
the session's engine with its own connections and deletes what it committed afterwards. It
drives the decision `deactivate_principal` makes (without its audit entry: a committed audit
entry could not be deleted again without breaking the chain other tests read).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from server.auth.permissions import Role
from server.db import make_session_factory
from server.registry.errors import LastAdmin
from server.registry.models import Organisation, OrgType, Principal
from server.registry.services import still_active_unless_last_admin
from tests.factories import make_principal, make_secretariat


@pytest.fixture
def two_admins(engine: Engine) -> Iterator[tuple[str, str, str]]:
    factory = make_session_factory(engine)
    with factory() as session:
        org = make_secretariat(session, f"race-{uuid.uuid4().hex[:8]}")
        first, _ = make_principal(session, org, [Role.NETWORK_ADMIN])
        second, _ = make_principal(session, org, [Role.NETWORK_ADMIN])
        session.commit()
        ids = (org.id, first.id, second.id)
    try:
        yield ids
    finally:
        with factory() as session:
            session.execute(delete(Principal).where(Principal.org_id == ids[0]))
            session.execute(delete(Organisation).where(Organisation.id == ids[0]))
            session.commit()


def test_two_admins_deactivating_each_other_at_once_leave_one_active(
    engine: Engine, two_admins: tuple[str, str, str]
) -> None:
    org_id, *admins = two_admins
    factory = make_session_factory(engine)
    barrier = threading.Barrier(len(admins))
    outcomes: list[str] = []
    lock = threading.Lock()

    def deactivate(principal_id: str) -> None:
        session: Session = factory()
        try:
            barrier.wait()
            try:
                principal = session.get(Principal, principal_id)
                assert principal is not None
                if still_active_unless_last_admin(session, principal):
                    principal.active = False
                    session.flush()
                # Hold the transaction open so the other one decides meanwhile.
                time.sleep(0.3)
                session.commit()
                result = "ok"
            except LastAdmin:
                session.rollback()
                result = "last-admin"
        except Exception as exc:  # noqa: BLE001 - reported through `outcomes`
            session.rollback()
            result = type(exc).__name__
        finally:
            session.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=deactivate, args=(a,)) for a in admins]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(outcomes) == ["last-admin", "ok"]
    with factory() as session:
        active = session.scalar(
            select(func.count())
            .select_from(Principal)
            .join(Organisation, Organisation.id == Principal.org_id)
            .where(
                Principal.org_id == org_id,
                Principal.active.is_(True),
                Organisation.org_type == OrgType.NETWORK_SECRETARIAT,
            )
        )
        assert active == 1
