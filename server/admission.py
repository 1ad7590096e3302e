"""Admission control: a bounded number of requests at work per worker, a short queue, and load
shed with 503 or 429 and `Retry-After` beyond it, so that a burst is answered instead of
taking the server down.

Without it every request that arrived got a thread at once. Forty threads then waited for
fifteen pooled connections or for SQLite's one write lock, each request took longer the more
there were, timeouts turned into 500s, and `/healthz` queued behind them all (issue 15).

Per worker process:

* at most `max_concurrent_requests` requests are inside the app at once (everything but the
  probes and the API description touches the database);
* up to `request_queue_size` more wait for a place, in arrival order, each for at most
  `request_queue_timeout_seconds`; a request that finds the queue full, or waits its time out,
  gets 503 `busy` with `Retry-After`;
* one organisation's requests (running and waiting) may hold at most `org_share` of places and
  queue together; past it they get 429 `fair-share-exceeded`, so one organisation in a hurry
  cannot lock out the others. The organisation is read from the bearer token, verified (an
  unverified claim would let anybody spend another organisation's share); requests without a
  valid token (the token endpoint, a flood of garbage) share one bucket of their own.

Waiting costs a queued request no thread and no connection: it is a future on the event loop.
The answer to a shed request is built here, on the event loop, without touching the database.
A request that arrives when the worker already holds `capacity` requests is shed earlier still,
at the door: by the HTTP protocol (`server.http_protocol`), before an ASGI task, the middleware or
the token are spent on it. In a burst of a thousand connections most are shed, and what each
costs the event loop is what the probes and the admitted requests wait for (issue 15).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import DomainError, FairShareExceeded, ServerBusy
from server.problems import error_response

#: Paths that never wait for a place: the probes answer whatever the load (`/readyz` has its own
#: budget) and the API description touches no database.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"})
#: The bucket of requests that carry no valid access token.
ANONYMOUS = "-"
#: Bounds of `Retry-After`: at least a second (the header counts whole seconds), and never so
#: long that a client gives up on a server that is merely busy.
MIN_RETRY_AFTER = 1
MAX_RETRY_AFTER = 30


@dataclass
class AdmissionStats:
    """Counts since the worker started; read by `/readyz` and the tests."""

    admitted: int = 0
    shed_busy: int = 0
    shed_share: int = 0
    last_shed: float = 0.0


@dataclass
class Admission:
    """The places, the queue and each organisation's count, for one event loop."""

    concurrency: int
    queue_size: int
    queue_timeout: float
    org_slots: int
    running: int = 0
    stats: AdmissionStats = field(default_factory=AdmissionStats)
    #: Moving average of how long a request holds its place, for `Retry-After`.
    service_seconds: float = 0.02
    _waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    _per_org: Counter[str] = field(default_factory=Counter)

    @property
    def capacity(self) -> int:
        """How many requests the worker holds at once, at work and waiting; past it a request is
        shed at the door (`server.http_protocol`), before the app sees it."""
        return self.concurrency + self.queue_size

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def busy(self, within: float = 1.0) -> bool:
        """True while requests wait for a place, or one was shed less than `within` s ago."""
        recently = time.monotonic() - self.stats.last_shed < within
        return bool(self._waiters) or (self.stats.last_shed > 0 and recently)

    def retry_after(self) -> int:
        """Seconds until the queue ahead of a new request would have drained, roughly."""
        ahead = self.running + len(self._waiters)
        estimate = ahead * self.service_seconds / self.concurrency
        return min(MAX_RETRY_AFTER, max(MIN_RETRY_AFTER, math.ceil(estimate)))

    async def acquire(self, org: str) -> None:
        """Take a place for a request of `org`, waiting in the queue if need be; raise
        `FairShareExceeded` or `ServerBusy` instead when the request is to be shed."""
        if self._per_org[org] >= self.org_slots:
            self.stats.shed_share += 1
            self.stats.last_shed = time.monotonic()
            raise FairShareExceeded(
                "your organisation has as many requests in progress as its share allows",
                retry_after_seconds=self.retry_after(),
            )
        if self.running < self.concurrency and not self._waiters:
            self.running += 1
            self._per_org[org] += 1
            self.stats.admitted += 1
            return
        if len(self._waiters) >= self.queue_size:
            raise self._shed("the server is at capacity")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._per_org[org] += 1
        try:
            async with asyncio.timeout(self.queue_timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # The place was handed over just as the time ran out (or the task was
                # cancelled): a timeout keeps it, anything else gives it back.
                if isinstance(exc, TimeoutError):
                    self.stats.admitted += 1
                    return
                self.release(org, 0.0)
                raise
            self._forget(waiter, org)
            if isinstance(exc, TimeoutError):
                raise self._shed("the server is at capacity; the wait was too long") from None
            raise
        self.stats.admitted += 1

    def release(self, org: str, held_seconds: float) -> None:
        """Give the place back: to the longest-waiting request if any, else to the pool."""
        self._per_org[org] -= 1
        if self._per_org[org] <= 0:
            del self._per_org[org]
        self.service_seconds += 0.1 * (held_seconds - self.service_seconds)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place passes on; `running` stays as it is
                return
        self.running -= 1

    def _forget(self, waiter: asyncio.Future[None], org: str) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass
        self._per_org[org] -= 1
        if self._per_org[org] <= 0:
            del self._per_org[org]

    def shed_at_door(self) -> ServerBusy:
        """The refusal of a request that found the worker at `capacity` on arrival."""
        return self._shed("the server is at capacity")

    def _shed(self, detail: str) -> ServerBusy:
        self.stats.shed_busy += 1
        self.stats.last_shed = time.monotonic()
        return ServerBusy(detail, retry_after_seconds=self.retry_after())


class AdmissionMiddleware:
    """ASGI middleware around the app: a place per request (`Admission`), held until the
    response is sent in full (a streamed export holds it while it streams) or the app ends."""

    def __init__(
        self, app: ASGIApp, *, admission: Admission, org_of: Callable[[Scope], str]
    ) -> None:
        self.app = app
        self.admission = admission
        self.org_of = org_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        org = self.org_of(scope)
        try:
            await self.admission.acquire(org)
        except DomainError as refusal:
            # Connection: close: the body (if any) was not read, and a client that retries
            # after `Retry-After` opens a fresh connection anyway.
            response = error_response(refusal, scope.get("path", ""))
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        started = time.monotonic()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.admission.release(org, time.monotonic() - started)

        async def releasing_send(message: Message) -> None:
            await send(message)
            # The place is free once the answer is out, not when the app's clean-up after it
            # has run: a client that sends its next request at once must find it free.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()

        try:
            await self.app(scope, receive, releasing_send)
        finally:
            release()
