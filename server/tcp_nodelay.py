"""uvicorn's HTTP/1.1 protocol with TCP_NODELAY set on every accepted connection.

With `--workers N` uvicorn (0.54, Linux) hands its workers a listening socket whose `proto` is 0,
so asyncio never sets TCP_NODELAY on the connections they accept, and every request after the
first on a keep-alive connection waits about 40 ms for the client's delayed ACK (uvicorn issue
3149): `GET /healthz` took 2.4 ms with one worker and 44 ms with two on the project's machine.
`refcheck-server serve --workers N` (N > 1) and the load tests run uvicorn with this protocol.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

#: What `uvicorn.run(http=...)` and `uvicorn --http` take.
IMPORT_PATH = "server.tcp_nodelay:NoDelayH11Protocol"


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
