"""uvicorn's HTTP/1.1 protocols with TCP_NODELAY set on every accepted connection.

With `--workers N` uvicorn (0.54, Linux) hands its workers a listening socket whose `proto` is 0,
so asyncio never sets TCP_NODELAY on the connections they accept, and every request after the
first on a keep-alive connection waits about 40 ms for the client's delayed ACK (uvicorn issue
3149): `GET /healthz` took 2.4 ms with one worker and 44 ms with two on the project's machine.
(uvloop sets it on every TCP connection of its own accord; asyncio's loop, uvloop's fallback,
does not.)

`refcheck-server serve --workers N` (N > 1) and the load tests run uvicorn with
`NoDelayHttpToolsProtocol` (`IMPORT_PATH`), on uvloop where it is installed: with the C parser
(httptools) and libuv's loop a burst's connections cost a worker a third to a half less CPU than
with h11, in pure Python, on asyncio's loop, so `/healthz` answers sooner in a burst of a
thousand new connections (issue 15, `make stress`; loadtests/README.md has the figures).
`NoDelayH11Protocol` is the same for uvicorn's pure-Python parser, for an install without
httptools.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: What `uvicorn.run(http=...)` and `uvicorn --http` take.
IMPORT_PATH = "server.tcp_nodelay:NoDelayHttpToolsProtocol"


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on the TCP connection under `transport`."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
