"""How many checks one worker computes at once (`REFCHECK_CHECKS_AT_ONCE`, default 1).

Why one: a check's cryptography is about a hundred short calls into libsodium, and each lets go
of the interpreter lock and takes it back. Checks computing side by side in one worker hand the
lock to each other at every call. Measured in one process with no HTTP at all: three threads
spent 7.5 ms of CPU a check against 5.8 ms for one thread, and answered barely more (187
against 168 a second). Over HTTP, two workers computing one check at a time each answered 270
checks a second against 235 (loadtests/README.md). More cores are used by more workers, not by
more threads in one.

The rest of a request (authentication, the other routes) is not paced: only the check, the one
request a network sends by the thousand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from anyio import CapacityLimiter, to_thread

T = TypeVar("T")


class CheckPacing:
    """Runs a check's work in a worker thread, at most `at_once` of them at a time."""

    def __init__(self, at_once: int) -> None:
        if at_once < 1:
            raise ValueError("at least one check at a time")
        self.at_once = at_once
        self._limiter: CapacityLimiter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, work: Callable[..., T], *args: object) -> T:
        return await to_thread.run_sync(work, *args, limiter=self._limiter_here())

    def _limiter_here(self) -> CapacityLimiter:
        # One per event loop: an app may be served by more than one loop over its life (the
        # tests' clients), and a place held by a check of a loop that closed before it ended
        # would never be given back to the next.
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._loop is not loop:
            self._limiter, self._loop = CapacityLimiter(self.at_once), loop
        return self._limiter
