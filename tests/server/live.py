"""A real uvicorn on 127.0.0.1, in a thread of the test process, over a database of its own.

For the overload tests (issue 15): a burst needs real sockets, a real event loop and real
database connections that wait for each other, which `httpx.ASGITransport` over the test's one
connection cannot give. The database is fresh (`tests.databases.fresh_database_url`, so SQLite
or the PostgreSQL of ``REFCHECK_TEST_DATABASE_URL``), migrated, holds a small network committed
for real, and is dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import Engine

from server.app import create_app
from server.audit.chain import append
from server.auth.permissions import Role
from server.auth.services import caller_for
from server.auth.tokens import issue_access_token
from server.db import make_engine, make_session_factory, utcnow
from server.http_protocol import IMPORT_PATH as NODELAY_PROTOCOL
from server.keys import load_keys
from server.migrate import upgrade
from server.registry.models import Principal
from server.settings import Settings
from tests.databases import TEST_DATABASE_ENV, dispose_database_url, fresh_database_url
from tests.factories import make_org, make_principal, make_secretariat, sign_assertion, token_form
from tests.sdk.live import free_port


@dataclass
class Member:
    principal_id: str
    org_id: str
    key: Ed25519PrivateKey
    headers: dict[str, str]

    def token_form(self) -> dict[str, str]:
        """A fresh client assertion for the token endpoint (a write: its `jti` is stored)."""
        return token_form(sign_assertion(self.principal_id, self.key))


@dataclass
class LiveDatabase:
    url: str
    engine: Engine
    key_dir: Path
    members: dict[str, Member]

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "data_dir": self.key_dir,
            "database_url": self.url,
            "run_background_jobs": False,
        }
        values.update(overrides)
        return Settings(**values)


@contextmanager
def live_database(tmp_dir: Path, key_dir: Path) -> Iterator[LiveDatabase]:
    """A migrated database with a secretariat (admin, auditor) and two members (focal point and
    HR checker each), committed; `members` carry ready bearer headers."""
    url = fresh_database_url(tmp_dir, "refcheck_overload")
    engine = None
    try:
        upgrade(url)
        engine = make_engine(url)
        keys = load_keys(key_dir / "server")
        settings = Settings(
            environment="test", data_dir=key_dir, database_url=url, run_background_jobs=False
        )
        specs = [
            ("admin", "secretariat", Role.NETWORK_ADMIN),
            ("auditor", "secretariat", Role.AUDITOR),
            ("a_focal", "org-a", Role.FOCAL_POINT),
            ("a_hr", "org-a", Role.HR_CHECKER),
            ("b_focal", "org-b", Role.FOCAL_POINT),
            ("b_hr", "org-b", Role.HR_CHECKER),
        ]
        members: dict[str, Member] = {}
        with make_session_factory(engine)() as session:
            orgs = {
                "secretariat": make_secretariat(session),
                "org-a": make_org(session, "org-a"),
                "org-b": make_org(session, "org-b"),
            }
            made: list[tuple[str, Principal, Ed25519PrivateKey]] = []
            for label, org, role in specs:
                principal, key = make_principal(session, orgs[org], [role])
                made.append((label, principal, key))
            # A trail to export: a few entries, as the registry's writes would leave.
            for label, principal, _key in made:
                append(
                    session,
                    at=utcnow(),
                    action="principal.create",
                    object_type="principal",
                    object_id=principal.id,
                    details={"label": label},
                )
            session.commit()
            for label, principal, key in made:
                token, _ = issue_access_token(
                    settings=settings, keys=keys, caller=caller_for(principal), now=utcnow()
                )
                members[label] = Member(
                    principal.id, principal.org_id, key, {"Authorization": f"Bearer {token}"}
                )
        yield LiveDatabase(url=url, engine=engine, key_dir=key_dir, members=members)
    finally:
        if engine is not None:
            engine.dispose()
        dispose_database_url(url)


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port of 127.0.0.1 in a thread; yield its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="on",
        backlog=2048,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        # The app's engine is the app's own (no `bind` was passed): give its connections back.
        ctx = app.state.ctx
        bind = ctx.sessions.kw.get("bind")
        if isinstance(bind, Engine):
            bind.dispose()


def app_for(db: LiveDatabase, **overrides: Any) -> FastAPI:
    return create_app(db.settings(**overrides))


def client(base_url: str, connections: int = 400) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(20.0))


#: The two backends of a test that runs on both: SQLite always; PostgreSQL when
#: ``REFCHECK_TEST_DATABASE_URL`` names one (`backend_database` skips it otherwise).
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@contextmanager
def backend_database(backend: str, tmp_dir: Path, key_dir: Path) -> Iterator[LiveDatabase]:
    """`live_database` on `backend` (one of `BACKENDS`), whatever the run's default: a SQLite
    database even in the PostgreSQL run, and the test skipped on PostgreSQL when the run has
    none."""
    if backend == "postgresql":
        if not os.environ.get(TEST_DATABASE_ENV):
            pytest.skip(f"{TEST_DATABASE_ENV} is not set")
        with live_database(tmp_dir, key_dir) as db:
            yield db
        return
    saved = os.environ.pop(TEST_DATABASE_ENV, None)
    try:
        with live_database(tmp_dir, key_dir) as db:
            if saved is not None:
                os.environ[TEST_DATABASE_ENV] = saved
                saved = None
            yield db
    finally:
        if saved is not None:
            os.environ[TEST_DATABASE_ENV] = saved


@contextmanager
def served_as_serve_serves(
    asgi: Any, app: FastAPI | None = None
) -> Iterator[tuple[str, uvicorn.Server]]:
    """`asgi` (the refcheck `app`, or a wrapper around it) on uvicorn in a thread, configured as
    `refcheck-server serve --workers N` configures each worker: httptools with TCP_NODELAY and
    shedding at the door (`server.http_protocol.IMPORT_PATH`), the event loop `auto` (uvloop, in
    the server extra). Yields the base URL and the server; gives the app's engine back after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        asgi,
        host="127.0.0.1",
        port=port,
        http=NODELAY_PROTOCOL,
        loop="auto",
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-as-serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        (app or asgi).state.ctx.sessions.kw["bind"].dispose()
