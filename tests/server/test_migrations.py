"""Migrations are deploy contracts: they create exactly the models, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from server.all_models import Base
from server.db import make_engine
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
