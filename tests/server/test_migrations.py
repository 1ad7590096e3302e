"""Migrations are deploy contracts: they create exactly the models, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from server.all_models import Base
from server.auth.permissions import Role
from server.checks.models import Check
from server.db import make_engine, new_id
from server.migrate import (
    alembic_config,
    check,
    current_revisions,
    head_revisions,
    is_current,
    upgrade,
)
from tests.databases import (
    TEST_DATABASE_ENV,
    create_postgres_database,
    dispose_database_url,
    drop_postgres_database,
    fresh_database_url,
)
from tests.factories import make_consent, make_org, make_principal


def test_models_have_no_drift_from_the_migrations(database_url):
    # `alembic check`: a model changed without a migration fails here, on whichever backend
    # the suite runs.
    check(database_url)


def test_there_is_exactly_one_migration_head():
    assert len(head_revisions()) == 1


def test_migrations_upgrade_an_empty_database_to_the_models(tmp_path: Path):
    url = fresh_database_url(tmp_path, "refcheck_migrate")
    try:
        engine = make_engine(url)
        try:
            assert not is_current(engine)
            upgrade(url)
            assert is_current(engine)
            tables = set(inspect(engine).get_table_names())
            assert set(Base.metadata.tables) <= tables
        finally:
            engine.dispose()
    finally:
        dispose_database_url(url)


def test_migrations_downgrade_to_empty_and_upgrade_again(tmp_path: Path):
    url = fresh_database_url(tmp_path, "refcheck_downgrade")
    try:
        upgrade(url)
        command.downgrade(alembic_config(url), "base")
        engine = make_engine(url)
        try:
            assert current_revisions(engine) == frozenset()
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        finally:
            engine.dispose()
        upgrade(url)
        check(url)
    finally:
        dispose_database_url(url)


def test_foundation_revision_id_is_stable():
    # Later migrations name it as their down_revision; renaming it breaks every deployment.
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revision = script.get_revision("0001_foundation")
    assert revision is not None and revision.down_revision is None


@pytest.mark.postgres
def test_migrations_upgrade_an_empty_postgresql_database():
    """Skipped only when no PostgreSQL is configured; configured but unreachable fails."""
    server_url = os.environ.get(TEST_DATABASE_ENV)
    if not server_url:
        pytest.skip(f"{TEST_DATABASE_ENV} is not set")
    url = create_postgres_database(server_url, "refcheck_pg_migrate")
    try:
        upgrade(url)
        engine = make_engine(url)
        try:
            assert is_current(engine)
            assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        check(url)
    finally:
        drop_postgres_database(server_url, url)


def test_daily_usage_migration_carries_over_todays_checks_and_evaluations(tmp_path: Path):
    """An upgrade in the middle of a day keeps what each organisation used today (yesterday's
    use is not carried), so it does not hand everyone a fresh daily quota."""
    url = fresh_database_url(tmp_path, "refcheck_usage")
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    try:
        upgrade(url, "0004_quotas_retention")
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                # The tables the factories fill are the same at 0004 as now.
                orgs = [make_org(session, name) for name in ("usage-1", "usage-2")]
                principals = [make_principal(session, org, [Role.HR_CHECKER])[0] for org in orgs]
                consent = make_consent(session, orgs[0], principals[0].id)
                for at in (now, now, yesterday):
                    session.add(
                        Check(
                            id=new_id(),
                            org_id=orgs[0].id,
                            consent_id=consent.id,
                            principal_id=principals[0].id,
                            at=at,
                            key_count=8,
                        )
                    )
                for who, at, count in ((1, now, 5), (1, now, 7), (0, yesterday, 9)):
                    session.execute(
                        text(
                            "INSERT INTO oprf_evaluations (id, org_id, principal_id, at, "
                            "element_count) VALUES (:id, :org, :p, :at, :n)"
                        ),
                        {
                            "id": new_id(),
                            "org": orgs[who].id,
                            "p": principals[who].id,
                            "at": at,
                            "n": count,
                        },
                    )
                session.commit()
                ids = [org.id for org in orgs]
            upgrade(url)
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT org_id, day, checks, evaluated_elements FROM daily_usage")
                ).all()
        finally:
            engine.dispose()
        today = now.date().isoformat()
        assert sorted(tuple(r) for r in rows) == sorted(
            [(ids[0], today, 2, 0), (ids[1], today, 0, 12)]
        )
    finally:
        dispose_database_url(url)
