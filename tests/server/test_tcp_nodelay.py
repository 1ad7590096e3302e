"""`NoDelayHttpToolsProtocol` (what `serve --workers N` runs) and `NoDelayH11Protocol` turn
Nagle's algorithm off on the connections they serve, and the former answers real requests."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from server.http_protocol import IMPORT_PATH, NoDelayH11Protocol, NoDelayHttpToolsProtocol


async def _app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never called
    raise AssertionError


class _Transport:
    """The one thing the protocol asks of a transport when a connection is made."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._sock if name == "socket" else default

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize("protocol_class", [NoDelayHttpToolsProtocol, NoDelayH11Protocol])
def test_an_accepted_connection_gets_tcp_nodelay(protocol_class: Any) -> None:
    config = uvicorn.Config(app=_app, log_level="warning")
    config.load()
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as _client:
            accepted, _ = server.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0

                async def made() -> None:
                    protocol = protocol_class(
                        config=config, server_state=ServerState(), app_state={}
                    )
                    protocol.connection_made(_Transport(accepted))

                asyncio.run(made())
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_serve_runs_the_httptools_protocol_and_it_answers_requests_on_a_kept_alive_connection():
    """uvicorn, configured as `serve --workers N` configures it (the protocol by its import
    path, the event loop `auto`), answers two requests on one connection."""
    assert IMPORT_PATH == "server.http_protocol:NoDelayHttpToolsProtocol"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=IMPORT_PATH, loop="auto", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            answers = []
            for path in ("/one", "/two"):
                conn.request("GET", path)
                response = conn.getresponse()
                answers.append((response.status, response.read()))
        finally:
            conn.close()
        assert answers == [(200, b"/one"), (200, b"/two")]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
