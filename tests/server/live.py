"""A real uvicorn on 127.0.0.1, in a thread of the test process, over a database of its own.

For the overload tests (issue 15): a burst needs real sockets, a real event loop and real
database connections that wait for each other, which `httpx.ASGITransport` over the test's one
connection cannot give. The database is fresh (`tests.databases.fresh_database_url`, so SQLite
or the PostgreSQL of ``REFCHECK_TEST_DATABASE_URL``), migrated, holds a small network committed
for real, and is dropped afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
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
from server.keys import load_keys
from server.migrate import upgrade
from server.registry.models import Principal
from server.settings import Settings
from tests.databases import dispose_database_url, fresh_database_url
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
