"""The HTTP protocol `serve` runs sheds at the door (issue 15, `server.http_protocol`).

`NoDelayHttpToolsProtocol` answers a request 503 `busy` itself, before an ASGI task is made,
when the worker already holds its admission capacity (the places and the queue) in requests
not yet answered; the probes (`EXEMPT_PATHS`) always pass. These tests run the real app on
real uvicorn with that protocol and uvloop, hold requests in flight with a test-only route that
waits for an event, and serve the app inside a wrapper that records every request the ASGI app
is handed, so that "the app never saw it" is a fact checked, not inferred from the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
import uvicorn
import uvloop
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from server.admission import EXEMPT_PATHS, Admission
from server.http_protocol import NoDelayHttpToolsProtocol, admission_of
from tests.server.live import (
    BACKENDS,
    LiveDatabase,
    app_for,
    backend_database,
    client,
    served_as_serve_serves,
)

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
BUSY = "urn:refcheck:problem:busy"
HOLD = "/v1/test-hold"
#: How long a test waits for the server to reach a state before it fails: a guard against a
#: hang, not a timing target.
STATE_BOUND = 10.0


class CountingApp:
    """The ASGI app as uvicorn is handed it, recording the path of every HTTP request the app
    is called for; the app is its `.app`, where `admission_of` looks."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)

    def saw(self, path: str) -> int:
        return self.paths.count(path)


@dataclass
class Door:
    """A live server at capacity 2 (one place, a queue of one) and what the tests hold it by."""

    base_url: str
    server: uvicorn.Server
    served: CountingApp
    admission: Admission
    db: LiveDatabase
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def tasks(self) -> int:
        """The worker's in-flight ASGI tasks (while the held requests wait, each is unanswered,
        which is what the protocol compares with the capacity)."""
        return len(self.server.server_state.tasks)


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STATE_BOUND
    while not condition():
        assert time.monotonic() < deadline, f"the server never got to: {what}"
        await asyncio.sleep(0.01)


def _add_hold_route(app: FastAPI, release: threading.Event) -> None:
    """`GET /v1/test-hold` keeps its place (or its spot in the queue) until `release` is set;
    the admission middleware admits it as any other route."""

    async def hold() -> dict[str, str]:
        await anyio.to_thread.run_sync(release.wait)
        return {"held": "released"}

    app.add_api_route(HOLD, hold, methods=["GET"])


@pytest.fixture(scope="module", params=BACKENDS)
def door_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, key_dir: Path
) -> Iterator[LiveDatabase]:
    with backend_database(request.param, tmp_path_factory.mktemp("door"), key_dir) as db:
        yield db


@pytest.fixture
def door(door_db: LiveDatabase) -> Iterator[Door]:
    app = app_for(
        door_db,
        max_concurrent_requests=1,
        request_queue_size=1,
        # B waits in the queue as long as a test needs it there, never shed for the wait.
        request_queue_timeout_seconds=60,
        # Both held requests are anonymous, one organisation ("-"): let it hold both.
        org_share=1.0,
        metrics_enabled=True,
    )
    release = threading.Event()
    _add_hold_route(app, release)
    served = CountingApp(app)
    with served_as_serve_serves(served, app) as (base_url, server):
        assert server.config.http_protocol_class is NoDelayHttpToolsProtocol
        assert isinstance(server.servers[0].get_loop(), uvloop.Loop)
        admission: Admission = app.state.admission
        assert admission.capacity == 2
        assert admission_of(served) is admission  # found through the wrapper's `.app`
        door = Door(base_url, server, served, admission, door_db, release)
        try:
            yield door
        finally:
            release.set()  # a failed test must not leave the server's threads waiting


@contextlib.asynccontextmanager
async def _held(door: Door, http: httpx.AsyncClient, n: int) -> AsyncIterator[list[asyncio.Task]]:
    """`n` hold requests in flight (the first at work, the next in the queue); on leaving,
    released, answered 200, and their ASGI tasks gone."""
    held = []
    seen = door.served.saw(HOLD)
    for i in range(1, n + 1):
        held.append(asyncio.create_task(http.get(HOLD)))
        # One at a time, so that the first is the one at work.
        await _until(lambda: door.served.saw(HOLD) >= seen + len(held), f"hold request {i}")
    await _until(lambda: door.admission.running == 1, "one hold request at work")
    await _until(lambda: door.admission.waiting == n - 1, f"{n - 1} hold requests queued")
    assert door.tasks == n
    try:
        yield held
    finally:
        door.release.set()
        answers = await asyncio.gather(*held)
        assert [a.status_code for a in answers] == [200] * n
        await _until(lambda: door.tasks == 0, "every ASGI task finished")


def _me(door: Door) -> dict[str, str]:
    return door.db.members["a_hr"].headers


def _a_check() -> dict[str, object]:
    return {
        "consent_id": "00000000-0000-4000-8000-000000000000",
        "key_id": "x",
        "blinded_elements": ["AAAA"],
    }


def _assert_shed_at_the_door(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == BUSY
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["connection"] == "close"


# --- at capacity: shed before the app --------------------------------------------------------


async def test_a_request_past_the_capacity_is_answered_busy_without_reaching_the_app(door: Door):
    async with client(door.base_url) as http, _held(door, http, 2):
        seen = list(door.served.paths)
        shed_before = door.admission.stats.shed_busy
        me = await http.get("/v1/me", headers=_me(door))
        check = await http.post("/v1/checks", json=_a_check(), headers=_me(door))
        _assert_shed_at_the_door(me)
        _assert_shed_at_the_door(check)
        assert door.served.paths == seen  # the app was called for neither
        assert door.admission.stats.shed_busy == shed_before + 2
        assert door.admission.waiting == 1  # B still waits; nothing of the shed ones queued


async def test_a_post_with_a_larger_body_is_shed_and_its_answer_still_arrives(door: Door):
    """The body is never read before the connection closes; the answer must still reach the
    client (not a reset in its place)."""
    body = {**_a_check(), "blinded_elements": ["A" * 64] * 2000}
    async with client(door.base_url) as http, _held(door, http, 2):
        seen = list(door.served.paths)
        for _ in range(5):
            _assert_shed_at_the_door(await http.post("/v1/checks", json=body, headers=_me(door)))
        assert door.served.paths == seen


async def _raw_exchange(door: Door, request: bytes) -> bytes:
    """Send `request` as is on a fresh connection; everything the server sends until it closes."""
    host, port = door.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), STATE_BOUND)
    finally:
        writer.close()


async def test_a_head_request_shed_at_the_door_gets_the_headers_without_a_body(door: Door):
    async with client(door.base_url) as http, _held(door, http, 2):
        answer = await _raw_exchange(door, b"HEAD /v1/me HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), answer
    assert re.search(rb"(?im)^content-length: [1-9]\d*\r?$", head), head
    assert body == b""


async def test_requests_pipelined_behind_one_shed_get_one_answer_and_the_connection_closes(
    door: Door,
) -> None:
    one = b"GET /v1/me HTTP/1.1\r\nHost: x\r\n\r\n"
    async with client(door.base_url) as http, _held(door, http, 2):
        seen = list(door.served.paths)
        shed_before = door.admission.stats.shed_busy
        answer = await _raw_exchange(door, one * 3)
        assert door.served.paths == seen
        assert door.admission.stats.shed_busy == shed_before + 1
    assert answer.count(b"HTTP/1.1 503 ") == 1, answer
    assert answer.endswith(b"}"), answer  # one whole problem body, then the close


async def test_while_the_worker_is_at_capacity_the_probes_still_reach_the_app(door: Door):
    assert "/healthz" in EXEMPT_PATHS
    async with client(door.base_url) as http, _held(door, http, 2):
        before = door.served.saw("/healthz")
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert door.served.saw("/healthz") == before + 1


async def test_once_the_held_requests_finish_the_same_request_gets_in_again(door: Door):
    async with client(door.base_url) as http:
        async with _held(door, http, 2):
            _assert_shed_at_the_door(await http.get("/v1/me", headers=_me(door)))
        # `_held` released A and B and waited for their tasks to end.
        again = await http.get("/v1/me", headers=_me(door))
        assert again.status_code == 200, again.text
        assert door.served.saw("/v1/me") == 1


async def test_below_capacity_a_request_reaches_the_app_and_waits_in_the_queue(door: Door):
    """One request held (capacity 2): the next is not shed at the door; the admission
    middleware queues it, and it is answered once the place frees."""
    async with client(door.base_url) as http:
        async with _held(door, http, 1):
            me = asyncio.create_task(http.get("/v1/me", headers=_me(door)))
            await _until(lambda: door.served.saw("/v1/me") == 1, "C in the app")
            await _until(lambda: door.admission.waiting == 1, "C in the queue")
            assert not me.done()
        answer = await me
    assert answer.status_code == 200, answer.text
    assert door.admission.stats.shed_busy == 0


# --- counted as the app would count them -----------------------------------------------------


def _sample(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _counts(http: httpx.AsyncClient) -> dict[str, float]:
    answer = await http.get("/metrics")
    assert answer.status_code == 200
    return {
        "busy": _sample(answer.text, "refcheck_refusals_total", 'problem="busy"'),
        "get_503": _sample(
            answer.text,
            "refcheck_http_requests_total",
            'method="GET",route="unmatched",status="503"',
        ),
        "post_503": _sample(
            answer.text,
            "refcheck_http_requests_total",
            'method="POST",route="unmatched",status="503"',
        ),
        "checks_refused": _sample(answer.text, "refcheck_checks_total", 'outcome="refused"'),
    }


async def test_requests_shed_at_the_door_are_counted_in_the_metrics(door: Door):
    async with client(door.base_url) as http:
        before = await _counts(http)
        async with _held(door, http, 2):
            for _ in range(3):
                _assert_shed_at_the_door(await http.get("/v1/me", headers=_me(door)))
            _assert_shed_at_the_door(
                await http.post("/v1/checks", json=_a_check(), headers=_me(door))
            )
        # `/metrics` is not exempt: it is read once the worker is below capacity again.
        after = await _counts(http)
    assert {k: after[k] - before[k] for k in before} == {
        "busy": 4,
        "get_503": 3,
        "post_503": 1,
        "checks_refused": 1,
    }


def test_one_client_asking_one_request_after_another_is_never_shed_at_capacity_one(
    door_db: LiveDatabase,
) -> None:
    """The door counts requests not yet answered, not uvicorn's tasks: a task lives on after
    its answer while the app cleans up, and a client that sends its next request on the same
    connection at once must find the place free, as the admission middleware frees it. Counted
    by tasks, 34 of 200 such requests were shed with one place and no queue."""
    app = app_for(door_db, max_concurrent_requests=1, request_queue_size=0)
    served = CountingApp(app)
    with served_as_serve_serves(served, app) as (base_url, _server):
        assert app.state.admission.capacity == 1
        with httpx.Client(base_url=base_url) as http:  # one keep-alive connection
            statuses = [
                http.get("/v1/me", headers=door_db.members["a_hr"].headers).status_code
                for _ in range(200)
            ]
    assert statuses == [200] * 200
    assert served.saw("/v1/me") == 200
