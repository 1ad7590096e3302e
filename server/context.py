"""What a running app holds once: settings, database, policy, keys and the clock.

Built at start-up so no request loads a key file or parses the policy (both would be slow and a
place for a half-read secret). The clock is injectable so deadline and retention tests can move
time without sleeping or patching.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from server.db import utcnow
from server.keys import ServerKeys
from server.policy.schema import NetworkPolicy
from server.settings import Settings

Clock = Callable[[], datetime]


@dataclass
class AppContext:
    settings: Settings
    sessions: sessionmaker[Session]
    policy: NetworkPolicy
    keys: ServerKeys
    clock: Clock = field(default=utcnow)

    def now(self) -> datetime:
        return self.clock()


async def get_context(request: Request) -> AppContext:
    """`context_of` as a dependency. `async` although it awaits nothing: FastAPI runs a plain
    function dependency in the thread pool, a hop (and a thread handover) per request for an
    attribute read."""
    return context_of(request)


def context_of(request: Request) -> AppContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, AppContext)
    return ctx
