"""Console fixtures: a real `refcheck-server` on 127.0.0.1 (tests/sdk/live.py: `init --demo`,
then `serve`), and consoles for its demo principals, each a real uvicorn server on 127.0.0.1
in a thread, driven over HTTP (httpx here, Chromium in the browser tests)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.sdk.live import LiveServer, free_port, running_server

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

from client_sdk import CaseRegistration, DisclosureAnswer  # noqa: E402
from client_sdk.console.app import ConsoleSettings, create_app  # noqa: E402


class Clock:
    """The console's idle clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Console:
    base_url: str
    settings: ConsoleSettings
    clock: Clock
    http: httpx.Client
    visited: list[str] = field(default_factory=list)

    def csrf(self) -> str:
        token = self.http.cookies.get("rc_csrf")
        if token is None:
            self.get("/unlock")
            token = self.http.cookies.get("rc_csrf")
        assert token
        return token

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        response = self.http.get(path, **kwargs)  # type: ignore[arg-type]
        self.visited.extend(str(r.url) for r in [*response.history, response])
        return response

    def post(
        self, path: str, data: dict[str, str] | None = None, **kwargs: object
    ) -> httpx.Response:
        body = {"csrf": self.csrf(), **(data or {})}
        response = self.http.post(path, data=body, **kwargs)  # type: ignore[arg-type]
        self.visited.extend(str(r.url) for r in [*response.history, response])
        return response

    def unlock(self) -> httpx.Response:
        response = self.post("/unlock", {"secret": self.settings.access_code})
        assert response.status_code == 200, response.text
        return response


@contextmanager
def serve_console(settings: ConsoleSettings) -> Iterator[str]:
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.vault.lock_now()


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("console-net")) as live:
        yield live


ConsoleFactory = Callable[..., Console]


@pytest.fixture
def console_for(network: LiveServer) -> Iterator[ConsoleFactory]:
    stack: list[tuple[object, httpx.Client]] = []

    def make(name: str, *, idle_seconds: int = 900, unlock: bool = True) -> Console:
        clock = Clock()
        settings = ConsoleSettings(
            credentials_path=network.credentials(name), idle_seconds=idle_seconds, clock=clock
        )
        cm = serve_console(settings)
        base_url = cm.__enter__()
        http = httpx.Client(base_url=base_url, follow_redirects=True, timeout=60)
        stack.append((cm, http))
        console = Console(base_url, settings, clock, http)
        if unlock:
            console.unlock()
        return console

    yield make
    for cm, http in reversed(stack):
        http.close()
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]


def hidden(html: str, name: str) -> list[str]:
    return re.findall(rf'name="{name}" value="([^"]*)"', html)


def links(html: str, prefix: str) -> list[str]:
    return re.findall(rf'href="({re.escape(prefix)}[^"]+)"', html)


@dataclass(frozen=True)
class TimedRequest:
    """A disclosure request made in `answered_requests`: its answer-time bucket and the month
    (YYYY-MM, UTC) it fell due."""

    bucket: str
    due_month: str


def register_live_case(network: LiveServer, name: str, *, years: int, day: int) -> dt.date:
    """org-a's focal point registers `name`'s case, found 20 days ago, its retention ending on
    `day` of that month `years` later (returned: the month the overview counts it in)."""
    from client_sdk import Client

    today = dt.date.today()
    finding = today - dt.timedelta(days=20)
    until = finding.replace(year=finding.year + years, day=day)
    with Client.from_credentials_file(network.credentials("org-a-focal")) as focal:
        focal.register_case(
            {"full_name": name, "date_of_birth": "1988-03-03", "nationality": "ID"},
            CaseRegistration(
                category="sexual_exploitation",
                finding_date=finding.isoformat(),
                sanction="dismissal",
                legal_basis="legitimate_interests",
                retention_until=until.isoformat(),
                mou_reference="MoU-2026-01",
                subject_notified_on=today.isoformat(),
            ),
        )
    return until


def answered_requests(network: LiveServer, person: dict[str, str]) -> list[TimedRequest]:
    """Three requests of org-b to org-a about `person`'s record, through the SDK: one answered
    at once (7 or more days before its deadline), one answered 36 hours after its deadline and
    one left unanswered 12 hours after it. The live server's clock cannot move, so the last two
    have their deadline moved into the past in its database before the answer."""
    import datetime as dt

    from sqlalchemy import update

    from client_sdk import Client
    from server.db import make_engine
    from server.disclosures.models import DisclosureRequest

    today = dt.date.today()
    with Client.from_credentials_file(network.credentials("org-a-focal")) as focal:
        focal.register_case(
            person,
            CaseRegistration(
                category="sexual_exploitation",
                finding_date=(today - dt.timedelta(days=30)).isoformat(),
                sanction="dismissal",
                legal_basis="legitimate_interests",
                retention_until=(today + dt.timedelta(days=3 * 365)).isoformat(),
                mou_reference="MoU-2026-01",
                subject_notified_on=today.isoformat(),
            ),
        )
    with Client.from_credentials_file(network.credentials("org-b-hr")) as hr:
        ids = []
        for n in range(3):  # one request per consent: a consent's second one is the first
            consent_id = hr.record_consent(
                applicant_ref=f"APP-ANSWER-TIMES-{n}",
                purpose="recruitment",
                position_ref="POS-9",
                form_sha256="ab" * 32,
                self_declared_finding=False,
            )
            (match,) = hr.check_applicant(person, consent_id).by_case()
            ids.append(hr.request_disclosure(match, consent_id, person))
        assert len(set(ids)) == 3
    now = dt.datetime.now(dt.UTC)
    moved = {ids[1]: now - dt.timedelta(hours=36), ids[2]: now - dt.timedelta(hours=12)}
    engine = make_engine(f"sqlite:///{network.data_dir / 'refcheck.db'}")
    try:
        with engine.begin() as connection:
            for request_id, due in moved.items():
                connection.execute(
                    update(DisclosureRequest)
                    .where(DisclosureRequest.id == request_id)
                    .values(due_at=due, created_at=due - dt.timedelta(days=10))
                )
    finally:
        engine.dispose()
    with Client.from_credentials_file(network.credentials("org-a-focal")) as focal:
        due_at = {i: focal.get_disclosure(i).due_at for i in ids}
        for request_id in ids[:2]:
            focal.answer_disclosure(request_id, DisclosureAnswer(same_person="not_same_person"))
    buckets = ("early_7_plus", "late_1_to_3", "open_overdue")
    return [TimedRequest(bucket, _month(due_at[i])) for bucket, i in zip(buckets, ids, strict=True)]


def _month(value: object) -> str:
    import datetime as dt

    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when.astimezone(dt.UTC).strftime("%Y-%m")


def chromium_path() -> str | None:
    return shutil.which("chromium")


__all__ = [
    "Console",
    "ConsoleFactory",
    "TimedRequest",
    "answered_requests",
    "chromium_path",
    "hidden",
    "links",
    "serve_console",
]
_ = Path
