"""Liveness and readiness probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.app import create_app
from server.db import make_engine
from server.settings import Settings
from tests.databases import dispose_database_url, fresh_database_url
from tests.factories import AppClient

pytestmark = pytest.mark.anyio


async def test_healthz_answers_without_authentication(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_on_a_migrated_database(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok"}


async def test_readyz_is_not_ready_when_migrations_are_pending(tmp_path: Path, key_dir):
    url = fresh_database_url(tmp_path, "refcheck_unmigrated")
    engine = make_engine(url)
    try:
        settings = Settings(
            environment="test", data_dir=key_dir, database_url=url, run_background_jobs=False
        )
        async with AppClient(create_app(settings, bind=engine)) as client:
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "not-ready",
            "checks": {"database": "ok", "migrations": "pending"},
        }
    finally:
        engine.dispose()
        dispose_database_url(url)


async def test_readyz_is_not_ready_when_the_database_is_unreachable(key_dir, tmp_path: Path):
    # A SQLite path inside a directory that does not exist cannot be opened.
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    settings = Settings(
        environment="test", data_dir=key_dir, database_url=url, run_background_jobs=False
    )
    async with AppClient(create_app(settings)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unreachable"
    assert "missing-dir" not in response.text
