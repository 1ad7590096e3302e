"""A registration racing a rotation on PostgreSQL, with the interleaving forced: the
registration holds the current-key row `FOR SHARE` with its entries written but not committed;
the rotation must wait for it, then re-key those entries too. Every entry ends under the new key.

Real connections (not the per-test savepoint), so this test has a database of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from protocol.identity import derive_keys
from server.app import build_context
from server.auth.permissions import Role
from server.auth.tokens import Caller
from server.cases.models import Pseudonym
from server.cases.schemas import CaseCreate
from server.cases.services import register_case
from server.context import AppContext
from server.db import transaction
from server.keys import create_keys
from server.migrate import upgrade
from server.oprf.models import CurrentOprfKey
from server.oprf.rotation import rotate
from server.oprf.services import current_key
from server.settings import Settings
from tests.blindflow import ServerKey, case_body
from tests.databases import TEST_DATABASE_ENV, create_postgres_database, drop_postgres_database
from tests.factories import make_org, make_principal
from tests.server.blindmatch.people import REGISTERED

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_ctx(tmp_path: Path) -> Iterator[AppContext]:
    server_url = os.environ.get(TEST_DATABASE_ENV)
    if not server_url:
        pytest.skip(f"{TEST_DATABASE_ENV} is not set")
    url = create_postgres_database(server_url, prefix="refcheck_rotation")
    try:
        upgrade(url)
        create_keys(tmp_path / "server")
        settings = Settings(
            environment="test", data_dir=tmp_path, database_url=url, run_background_jobs=False
        )
        ctx = build_context(settings)
        yield ctx
        ctx.sessions.kw["bind"].dispose()
    finally:
        drop_postgres_database(server_url, url)


def _server_key(ctx: AppContext) -> ServerKey:
    keys = ctx.keys
    return ServerKey(
        key_id=keys.oprf_key_id,
        key_seq=keys.oprf_key_seq,
        public_key=keys.oprf_public,
        registration_key=keys.registration_public,
        signing_key=keys.audit_public,
        network_id=keys.network_id,
    )


def test_a_registration_racing_a_rotation_ends_with_every_entry_under_the_new_key(
    pg_ctx: AppContext,
) -> None:
    ctx = pg_ctx
    with transaction(ctx.sessions) as s:
        current_key(s, ctx)
        org = make_org(s, short_name="org-a")
        principal, _key = make_principal(s, org, [Role.FOCAL_POINT])
        caller = Caller(principal.id, org.id, frozenset({Role.FOCAL_POINT}))
        # One case registered before, so the rotation has entries to move either way.
        today = datetime.now(UTC).date()
        first = CaseCreate(**case_body(_server_key(ctx), derive_keys(REGISTERED), today=today))
        register_case(s, ctx, caller, first)

    holding = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []
    racing = CaseCreate(**case_body(_server_key(ctx), derive_keys(REGISTERED), today=today))

    def registration() -> None:
        session: Session = ctx.sessions()

        @event.listens_for(session, "before_commit")
        def pause(_session: Any) -> None:
            # Entries written, current-key row held FOR SHARE, not yet committed.
            holding.set()
            release.wait(30)

        try:
            register_case(session, ctx, caller, racing)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)
        finally:
            session.close()

    def rotation() -> None:
        try:
            rotate(ctx)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    reg = threading.Thread(target=registration)
    reg.start()
    assert holding.wait(30), "the registration never reached its commit"
    rot = threading.Thread(target=rotation)
    rot.start()
    rot.join(1.0)
    # The rotation waits for the registration's FOR SHARE lock on the current-key row.
    assert rot.is_alive(), "the rotation did not wait for the registration in flight"
    release.set()
    reg.join(30)
    rot.join(60)
    assert not errors, errors

    with transaction(ctx.sessions) as s:
        seq = s.scalar(select(CurrentOprfKey.key_seq))
        rows = s.execute(select(Pseudonym.case_id, Pseudonym.key_seq)).all()
    assert seq == 2
    assert {case_id for case_id, _ in rows} and len({c for c, _ in rows}) == 2
    assert {key_seq for _, key_seq in rows} == {2}
    assert len(rows) == 2 * ctx.policy.keys_per_check
