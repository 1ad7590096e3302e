"""Checks are computed `checks_at_once` at a time (`server.checks.pacing`), and the check route's
`require_in_work` judges the token before the body and the registry in the work's thread.

Every test that posts a check runs on a database of its own (`tests.server.live.live_database`,
one for the module), with apps made on it by `create_app` and driven in-process over
`httpx.ASGITransport`: concurrent checks need connections of their own, which the suite's shared
test connection cannot give. Principals a test changes are made by that test.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy import Engine

import server.checks.routes as routes
from protocol.identity import derive_keys
from server.app import create_app
from server.auth.permissions import Role
from server.checks.pacing import CheckPacing
from server.consents.models import Consent
from server.db import make_session_factory
from server.registry.models import Organisation, Principal
from server.settings import Settings
from tests.blindflow import build_check_request, fetch_key, record_consent
from tests.factories import AppClient, make_principal, sign_assertion, token_form
from tests.server.blindmatch.people import OTHER
from tests.server.live import LiveDatabase, live_database

INVALID_TOKEN = "urn:refcheck:problem:invalid-token"
PERMISSION_DENIED = "urn:refcheck:problem:permission-denied"
MALFORMED = {"consent_id": 42, "blinded_elements": "not a list"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, key_dir: Path) -> Iterator[LiveDatabase]:
    with live_database(tmp_path_factory.mktemp("pacing"), key_dir) as live:
        yield live


@asynccontextmanager
async def _client(db: LiveDatabase, **overrides: Any) -> AsyncIterator[AppClient]:
    """An in-process client of an app on `db` with `overrides` to its settings."""
    app = create_app(db.settings(**overrides))
    try:
        async with AppClient(app) as client:
            yield client
    finally:
        bind = app.state.ctx.sessions.kw.get("bind")
        if isinstance(bind, Engine):
            bind.dispose()


async def _check_body(client: AppClient, db: LiveDatabase) -> tuple[str, dict[str, Any]]:
    """A consent of org-b's HR account and a valid check body for it."""
    headers = db.members["b_hr"].headers
    consent = await record_consent(client, headers, now=datetime.now(UTC))
    server_key = await fetch_key(client, headers)
    _batch, body = build_check_request(server_key, consent["id"], derive_keys(OTHER))
    return str(consent["id"]), body


def _checks_used(db: LiveDatabase, consent_id: str) -> int:
    with make_session_factory(db.engine)() as session:
        consent = session.get(Consent, consent_id)
        assert consent is not None
        return consent.checks_used


def _problem(response: httpx.Response) -> str:
    problem_type = response.json()["type"]
    assert isinstance(problem_type, str)
    return problem_type


# --- pacing -----------------------------------------------------------------------------------


class Overlap:
    """Wraps `server.checks.routes.run_check`: counts the calls in it at once (thread-safe),
    holding each ~50 ms before the real work so that overlapping calls would be seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self.most = 0
        self.calls = 0
        self.threads: set[int] = set()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = routes.run_check

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._inside += 1
                self.calls += 1
                self.most = max(self.most, self._inside)
                self.threads.add(threading.get_ident())
            try:
                time.sleep(0.05)
                return real(*args, **kwargs)
            finally:
                with self._lock:
                    self._inside -= 1

        monkeypatch.setattr(routes, "run_check", counted)


async def _four_checks_at_once(
    db: LiveDatabase, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> tuple[Overlap, list[httpx.Response]]:
    overlap = Overlap()
    async with _client(db, **overrides) as client:
        bodies = [(await _check_body(client, db))[1] for _ in range(4)]
        overlap.install(monkeypatch)
        headers = db.members["b_hr"].headers
        responses = await asyncio.gather(
            *(client.post("/v1/checks", headers=headers, json=body) for body in bodies)
        )
    return overlap, list(responses)


@pytest.mark.anyio
async def test_by_default_concurrent_checks_run_one_at_a_time(
    db: LiveDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """checks_at_once=1 (the default): four checks posted at once all answer, and `run_check`
    never runs twice at the same time; it runs off the event loop's thread."""
    assert Settings.model_fields["checks_at_once"].default == 1
    overlap, responses = await _four_checks_at_once(db, monkeypatch)
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert overlap.calls == 4
    assert overlap.most == 1
    assert threading.get_ident() not in overlap.threads


@pytest.mark.anyio
async def test_with_three_at_once_the_same_probe_sees_checks_overlap(
    db: LiveDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counter-case: the probe above can see overlap, so its `most == 1` means pacing."""
    overlap, responses = await _four_checks_at_once(db, monkeypatch, checks_at_once=3)
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert overlap.calls == 4
    assert 2 <= overlap.most <= 3


def test_checks_at_once_must_be_at_least_one(
    monkeypatch: pytest.MonkeyPatch, key_dir: Path
) -> None:
    """REFCHECK_CHECKS_AT_ONCE=0 is refused by the settings, and `CheckPacing(0)` by itself;
    the environment variable is read (3 is taken) and 1 is accepted."""

    def settings() -> Settings:
        return Settings(environment="test", data_dir=key_dir, run_background_jobs=False)

    monkeypatch.setenv("REFCHECK_CHECKS_AT_ONCE", "3")
    assert settings().checks_at_once == 3
    monkeypatch.setenv("REFCHECK_CHECKS_AT_ONCE", "0")
    with pytest.raises(ValidationError, match="checks_at_once"):
        settings()
    with pytest.raises(ValueError, match="at least one"):
        CheckPacing(0)
    assert CheckPacing(1).at_once == 1


def test_one_pacing_serves_two_event_loops_in_turn() -> None:
    """An app may be served by more than one event loop over its life (the tests' clients):
    the same `CheckPacing` runs work, and still paces it, under one `asyncio.run` and then
    under another."""
    pacing = CheckPacing(1)
    lock = threading.Lock()
    state = {"inside": 0, "most": 0}

    def work(n: int) -> int:
        with lock:
            state["inside"] += 1
            state["most"] = max(state["most"], state["inside"])
        time.sleep(0.02)
        with lock:
            state["inside"] -= 1
        return n * 2

    async def three_at_once() -> list[int]:
        return list(await asyncio.gather(*(pacing.run(work, n) for n in range(3))))

    for _loop in range(2):
        state["most"] = 0
        assert asyncio.run(three_at_once()) == [0, 2, 4]
        assert state["most"] == 1


def test_a_place_left_held_by_a_closed_event_loop_does_not_block_the_next() -> None:
    """A check of a loop that closed before it ended (a test's client torn down) never gives
    its place back; the next loop gets places of its own. Counter-check: under that same loop,
    the place is still taken."""
    pacing = CheckPacing(1)

    async def hold_the_only_place() -> None:
        # What a check that never finished leaves behind: its place, borrowed, not returned.
        pacing._limiter_here().acquire_on_behalf_of_nowait(object())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pacing.run(lambda: 1), timeout=0.2)

    async def run_once() -> int:
        return await asyncio.wait_for(pacing.run(lambda: 1), timeout=5)

    asyncio.run(hold_the_only_place())
    assert asyncio.run(run_once()) == 1


# --- require_in_work --------------------------------------------------------------------------


def _new_principal(db: LiveDatabase, roles: list[Role]) -> tuple[str, Ed25519PrivateKey]:
    """A principal of org-b with `roles`, committed; its id and auth key."""
    with make_session_factory(db.engine)() as session:
        org = session.get(Organisation, db.members["b_hr"].org_id)
        assert org is not None
        principal, key = make_principal(session, org, roles)
        principal_id = principal.id
        session.commit()
    return principal_id, key


def _change_principal(db: LiveDatabase, principal_id: str, **values: Any) -> None:
    with make_session_factory(db.engine)() as session:
        principal = session.get(Principal, principal_id)
        assert principal is not None
        for name, value in values.items():
            setattr(principal, name, value)
        session.commit()


async def _headers(client: AppClient, principal_id: str, key: Ed25519PrivateKey) -> dict[str, str]:
    """Bearer headers from the real token endpoint."""
    assertion = sign_assertion(principal_id, key, audience=client.ctx.settings.issuer)
    response = await client.post("/v1/oauth/token", data=token_form(assertion))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.mark.anyio
async def test_no_token_is_refused_before_the_body_is_read(db: LiveDatabase) -> None:
    """No token and a malformed body: 401, not 422; a token that may check gets 422 for the
    same body (so the body is malformed and the refusal comes first)."""
    async with _client(db) as client:
        response = await client.post("/v1/checks", json=MALFORMED)
        assert response.status_code == 401, response.text
        assert _problem(response) == INVALID_TOKEN
        allowed = await client.post(
            "/v1/checks", headers=db.members["b_hr"].headers, json=MALFORMED
        )
        assert allowed.status_code == 422, allowed.text


@pytest.mark.anyio
@pytest.mark.parametrize("label", ["b_focal", "auditor", "admin"])
async def test_a_token_whose_roles_cannot_check_is_refused_before_the_body_is_read(
    db: LiveDatabase, label: str
) -> None:
    """A valid token of a principal whose roles lack checks:check:run, with a malformed body:
    403 permission-denied, not 422."""
    async with _client(db) as client:
        response = await client.post(
            "/v1/checks", headers=db.members[label].headers, json=MALFORMED
        )
    assert response.status_code == 403, response.text
    assert _problem(response) == PERMISSION_DENIED


@pytest.mark.anyio
async def test_a_principal_deactivated_after_its_token_was_issued_cannot_check(
    db: LiveDatabase,
) -> None:
    """The token is still valid and names HR, but the registry says inactive: 401, and the
    consent's budget is not spent. Before deactivation the same principal checks (200)."""
    principal_id, key = _new_principal(db, [Role.HR_CHECKER])
    async with _client(db) as client:
        headers = await _headers(client, principal_id, key)
        _first, first_body = await _check_body(client, db)
        ran = await client.post("/v1/checks", headers=headers, json=first_body)
        assert ran.status_code == 200, ran.text
        consent_id, body = await _check_body(client, db)
        _change_principal(db, principal_id, active=False)
        response = await client.post("/v1/checks", headers=headers, json=body)
    assert response.status_code == 401, response.text
    assert _problem(response) == INVALID_TOKEN
    assert _checks_used(db, consent_id) == 0


@pytest.mark.anyio
async def test_the_check_role_removed_after_the_token_was_issued_is_refused_at_once(
    db: LiveDatabase,
) -> None:
    """The token names HR (so `require_in_work` lets it through), the registry no longer does:
    403 permission-denied from the work's thread, and the consent's budget is not spent."""
    principal_id, key = _new_principal(db, [Role.HR_CHECKER])
    async with _client(db) as client:
        headers = await _headers(client, principal_id, key)
        consent_id, body = await _check_body(client, db)
        _change_principal(db, principal_id, roles=[Role.FOCAL_POINT.value])
        response = await client.post("/v1/checks", headers=headers, json=body)
        assert response.status_code == 403, response.text
        assert _problem(response) == PERMISSION_DENIED
        assert _checks_used(db, consent_id) == 0
        # Given back: the same token checks again (the refusal was the registry's).
        _change_principal(db, principal_id, roles=[Role.HR_CHECKER.value])
        again = await client.post("/v1/checks", headers=headers, json=body)
    assert again.status_code == 200, again.text
    assert _checks_used(db, consent_id) == 1


@pytest.mark.anyio
async def test_the_check_role_granted_after_the_token_was_issued_counts_from_the_next_token(
    db: LiveDatabase,
) -> None:
    """The registry now grants HR but the old token does not name it: 403 permission-denied;
    a token issued after the grant checks (200)."""
    principal_id, key = _new_principal(db, [Role.FOCAL_POINT])
    async with _client(db) as client:
        old = await _headers(client, principal_id, key)
        consent_id, body = await _check_body(client, db)
        _change_principal(db, principal_id, roles=[Role.FOCAL_POINT.value, Role.HR_CHECKER.value])
        refused = await client.post("/v1/checks", headers=old, json=body)
        assert refused.status_code == 403, refused.text
        assert _problem(refused) == PERMISSION_DENIED
        assert _checks_used(db, consent_id) == 0
        new = await _headers(client, principal_id, key)
        response = await client.post("/v1/checks", headers=new, json=body)
    assert response.status_code == 200, response.text
    assert _checks_used(db, consent_id) == 1
