"""The HTTP/1.1 protocols `refcheck-server serve` runs: uvicorn's, with TCP_NODELAY set on every
accepted connection, and (httptools) shedding at the door.

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

`NoDelayHttpToolsProtocol` also sheds at the door: a request that arrives when the worker
already holds its admission capacity (`server.admission.Admission.capacity`: the places and the
queue) of requests not yet answered is answered 503 `busy`, problem+json with `Retry-After` and
`Connection: close`, from the parser's callback, without an ASGI task, the middleware or the
verification of its token. The app's admission control would shed it anyway, at the cost of
all of those; in a burst of a thousand new connections that cost, paid by the event loop for
every request shed, is what kept `/healthz` waiting (issue 15). The probes and the API
description (`EXEMPT_PATHS`) always pass. It counts each shed request in the app's metrics, as
the app would have.

The workers share one listening socket, and libuv (uvloop) accepts every connection waiting at
each wake-up: the first worker to wake took most of a client's keep-alive connections, one
worker ran at its interpreter's limit while the other idled, and which split a run drew moved
`make bench`'s check throughput by a fifth to a third (loadtests/README.md).
`take_turns_at_accepting` sets libuv's own switch for this (`UV_TCP_SINGLE_ACCEPT`: accept one,
yield, so the next goes to a worker that is free) in the environment the workers inherit.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from server.admission import EXEMPT_PATHS, Admission
from server.metrics import count_shed_at_door
from server.problems import error_response

#: What `uvicorn.run(http=...)` and `uvicorn --http` take.
IMPORT_PATH = "server.http_protocol:NoDelayHttpToolsProtocol"

#: libuv reads it when a worker starts listening; without uvloop (Windows) it changes nothing.
SINGLE_ACCEPT = "UV_TCP_SINGLE_ACCEPT"


def take_turns_at_accepting(environ: MutableMapping[str, str]) -> None:
    """Make workers that share a listening socket take its connections in turn (module doc).
    For the environment the workers will inherit; an operator's own setting is kept."""
    environ.setdefault(SINGLE_ACCEPT, "1")


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on the TCP connection under `transport`."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def admission_of(app: Any) -> Admission | None:
    """The admission control of the refcheck app inside uvicorn's wrappers (the proxy-headers
    middleware, the app itself), or None for another app."""
    for _ in range(4):
        admission = getattr(getattr(app, "state", None), "admission", None)
        if isinstance(admission, Admission):
            return admission
        app = getattr(app, "app", None)
    return None


_NOT_LOOKED_UP = object()


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        admission = self._admission()
        if admission is None or cycle.scope["path"] in EXEMPT_PATHS:
            super()._start_asgi_task(cycle, app)
            return
        # The worker's requests not yet answered: at work, waiting for a place, or not yet run.
        # Not uvicorn's tasks: a task lives on after its answer while the app cleans up, but
        # its place is free once the answer is out (`server.admission.AdmissionMiddleware`),
        # and a client's next request on the connection must find it so.
        unanswered = self._unanswered()
        if len(unanswered) >= admission.capacity:
            self._shed(cycle, admission)
            return
        unanswered.add(cycle)

        def answered() -> None:
            unanswered.discard(cycle)
            self.on_response_complete()

        async def run(scope: Any, receive: Any, send: Any) -> None:
            try:
                await app(scope, receive, send)
            finally:
                unanswered.discard(cycle)  # no answer went out (an error, a disconnect)

        cycle.on_response = answered
        super()._start_asgi_task(cycle, run)

    def _unanswered(self) -> set[RequestResponseCycle]:
        # One set per worker (the config is the worker's), shared by its connections.
        found: set[RequestResponseCycle] | None = getattr(self.config, "_refcheck_unanswered", None)
        if found is None:
            found = set()
            self.config._refcheck_unanswered = found  # type: ignore[attr-defined]
        return found

    def _admission(self) -> Admission | None:
        # Looked up once per worker (the config is the worker's), not once per connection.
        found = getattr(self.config, "_refcheck_admission", _NOT_LOOKED_UP)
        if found is _NOT_LOOKED_UP:
            found = admission_of(self.app)
            self.config._refcheck_admission = found  # type: ignore[attr-defined]
        return found  # type: ignore[return-value]

    def _shed(self, cycle: RequestResponseCycle, admission: Admission) -> None:
        # The request's body, if any, is not read: the callbacks that would feed it to the
        # cycle see its response complete and drop it, and the connection closes.
        cycle.response_complete = True
        if self.transport.is_closing():
            return  # a request pipelined behind one already shed: its answer went out
        path, method = cycle.scope["path"], cycle.scope["method"]
        response = error_response(admission.shed_at_door(), path)
        head = [b"HTTP/1.1 503 Service Unavailable"]
        head += [name + b": " + value for name, value in response.raw_headers]
        head.append(b"connection: close")
        body = b"" if method == "HEAD" else response.body
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()
        count_shed_at_door(method, path)


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
