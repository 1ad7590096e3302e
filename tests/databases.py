"""Databases for tests that need one of their own (CLI runs, a live server, migration tests).

`fresh_database_url(tmp_dir)` follows the suite's choice of backend: a new SQLite file, or, when
``REFCHECK_TEST_DATABASE_URL`` names a PostgreSQL server, a new uniquely named database on it;
`dispose_database_url` drops the latter again.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TEST_DATABASE_ENV = "REFCHECK_TEST_DATABASE_URL"


def postgres_server_url() -> str | None:
    return os.environ.get(TEST_DATABASE_ENV) or None


def create_postgres_database(server_url: str, prefix: str = "refcheck_test") -> str:
    """Create a uniquely named database on the server of `server_url`; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def fresh_database_url(tmp_dir: Path, prefix: str = "refcheck_test") -> str:
    """An empty database (no schema) on the suite's backend."""
    server_url = postgres_server_url()
    if server_url:
        return create_postgres_database(server_url, prefix)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{tmp_dir / f'{prefix}-{uuid.uuid4().hex[:8]}.db'}"


def dispose_database_url(url: str) -> None:
    server_url = postgres_server_url()
    if server_url and url.startswith("postgresql"):
        drop_postgres_database(server_url, url)
