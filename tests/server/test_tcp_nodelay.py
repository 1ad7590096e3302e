"""`NoDelayH11Protocol` turns Nagle's algorithm off on the connections it serves."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from server.tcp_nodelay import NoDelayH11Protocol


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


def test_an_accepted_connection_gets_tcp_nodelay() -> None:
    config = uvicorn.Config(app=_app, log_level="warning")
    config.load()
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as _client:
            accepted, _ = server.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0

                async def made() -> None:
                    protocol = NoDelayH11Protocol(
                        config=config, server_state=ServerState(), app_state={}
                    )
                    protocol.connection_made(_Transport(accepted))  # type: ignore[arg-type]

                asyncio.run(made())
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
