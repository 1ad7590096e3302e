"""Console fixtures: a real `refcheck-server` on 127.0.0.1 (tests/sdk/live.py: `init --demo`,
then `serve`), and consoles for its demo principals, each a real uvicorn server on 127.0.0.1
in a thread, driven over HTTP (httpx here, Chromium in the browser tests)."""

from __future__ import annotations

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


def chromium_path() -> str | None:
    return shutil.which("chromium")


__all__ = ["Console", "ConsoleFactory", "chromium_path", "hidden", "links", "serve_console"]
_ = Path
