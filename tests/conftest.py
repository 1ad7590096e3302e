"""Fixtures shared by every server and SDK test. Real database, real app, real token endpoint.

Database (one per test session, migrated with `server.migrate.upgrade`):
  * default: a fresh SQLite file in a temporary directory;
  * with ``REFCHECK_TEST_DATABASE_URL=postgresql+psycopg://user@host:port/anydb`` set: a fresh,
    uniquely named database created on that server (dropped at the end). The URL's database is
    only used to connect for CREATE/DROP DATABASE; it is never written to. An unreachable server
    is an error, never a skip.

Per-test isolation (warehouse's pattern): `connection` opens an outer transaction that is rolled
back after the test; every session (the test's `session` and the app's, one per request) is
bound to that connection with ``join_transaction_mode="create_savepoint"``. Routes call
``session.commit()`` for real (it releases a SAVEPOINT), and nothing survives the test.
Consequence: after a request changed a row, call ``session.expire_all()`` (or
``session.refresh(obj)``) before reading it through the test's `session`.

Fixtures
  ``database_url`` (session)   URL of the migrated test database.
  ``engine`` (session)         its Engine (use `connection`/`session` in tests, not this).
  ``key_dir`` (session)        data dir with the server's key files (``key_dir/server/*.key``).
  ``server_keys`` (session)    the loaded `server.keys.ServerKeys`.
  ``connection``               the test's connection, inside the outer transaction.
  ``session``                  a `Session` on that connection (commit freely; rolled back).
  ``clock``                    `MutableClock`: the app's "now". Starts at the wall-clock time (so
                               the SDK's own `time.time()` assertions stay valid); move it with
                               ``clock.advance(days=3)`` or ``clock.set(datetime(...))``.
  ``settings``                 `Settings` for tests (no background jobs, the shipped policy).
  ``app``                      ``create_app(settings, bind=connection, clock=clock)``, its policy
                               with ``filter_publish_seconds = 0`` (every change publishes the
                               registry filter at once, as on the demo network).
  ``ctx``                      the app's `AppContext` (policy, keys, clock, sessions).
  ``client``                   async `tests.factories.AppClient` (an ``httpx.AsyncClient`` over
                               ``httpx.ASGITransport(app=app)``, base_url http://testserver).
  ``network``                  `tests.factories.Network`: secretariat (admin, auditor), org-a and
                               org-b (focal point + HR service account each), every actor with
                               ready ``headers``; ``network.org_a_keys`` holds org-a's private keys.
  ``anyio_backend``            "asyncio". Async tests are marked ``@pytest.mark.anyio``.

Factories for anything else are in tests/factories.py (`make_org`, `make_secretariat`,
`make_principal`, `auth_headers`, `sign_assertion`, `token_form`); a test that needs a database
of its own (a CLI run, a live server) gets one from tests/databases.py (`fresh_database_url`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from server.app import create_app
from server.context import AppContext
from server.db import make_engine, make_session_factory
from server.keys import ServerKeys, create_keys, load_keys
from server.migrate import upgrade
from server.settings import Settings
from tests.databases import TEST_DATABASE_ENV, create_postgres_database, drop_postgres_database
from tests.factories import AppClient, Network, build_network


@dataclass
class MutableClock:
    """A controllable "now" (timezone-aware UTC). Call it to read the time."""

    current: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.current

    def today(self) -> date:
        return self.current.date()

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("clock.set needs an aware datetime")
        self.current = when.astimezone(UTC)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by `delta` or by `timedelta(**kwargs)`; returns the new now."""
        self.current += delta if delta is not None else timedelta(**kwargs)
        return self.current


# --- database, once per session ------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server_url = os.environ.get(TEST_DATABASE_ENV)
    if server_url:
        url = create_postgres_database(server_url)
        try:
            upgrade(url)
            yield url
        finally:
            drop_postgres_database(server_url, url)
    else:
        path = tmp_path_factory.mktemp("db") / "refcheck-test.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("data")
    create_keys(data_dir / "server")
    return data_dir


@pytest.fixture(scope="session")
def server_keys(key_dir: Path) -> ServerKeys:
    return load_keys(key_dir / "server")


# --- per test ----------------------------------------------------------------------------


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            if outer.is_active:
                outer.rollback()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    s = make_session_factory(connection)()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def settings(key_dir: Path, database_url: str) -> Settings:
    return Settings(
        environment="test",
        data_dir=key_dir,
        database_url=database_url,
        run_background_jobs=False,
    )


@pytest.fixture
def app(settings: Settings, connection: Connection, clock: MutableClock) -> FastAPI:
    created = create_app(settings, bind=connection, clock=clock)
    context = created.state.ctx
    assert isinstance(context, AppContext)
    # Tests publish the registry filter inside every change, as the demo network does
    # (docs/protocol.md, "The registry filter"): a registration is in the next check's filter.
    context.policy = context.policy.model_copy(update={"filter_publish_seconds": 0})
    return created


@pytest.fixture
def ctx(app: FastAPI) -> AppContext:
    context = app.state.ctx
    assert isinstance(context, AppContext)
    return context


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AppClient]:
    async with AppClient(app) as c:
        yield c


@pytest.fixture
async def network(session: Session, client: AppClient, clock: MutableClock) -> Network:
    return await build_network(session, client, clock.today())
