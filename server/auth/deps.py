"""FastAPI dependencies that authenticate a request and check its one declared permission.

Usage in a route::

    @router.post("/v1/cases")
    def register(caller: Annotated[Caller, Depends(require(Permission.CASE_REGISTER))], ...): ...

Every route either depends on `require(...)` / `require_any(...)` or is listed as public in the
authorisation matrix test (token endpoint, JWKS, health); the test fails otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.types import Scope

from server.admission import ANONYMOUS
from server.auth.errors import InvalidToken
from server.auth.permissions import Permission
from server.auth.services import caller_in_good_standing
from server.auth.tokens import Caller, verify_access_token
from server.context import AppContext, get_context
from server.db import Begin, bind_for, read_step
from server.errors import DomainError, PermissionDenied

_bearer = HTTPBearer(auto_error=False)

_READ_METHODS = frozenset({"GET", "HEAD"})
#: GET routes that write all the same: the consent lookup records an audit entry of itself.
#: A GET route missing here still works, but on SQLite its write may be refused as `busy`
#: while another request writes (a read transaction cannot wait for the write lock).
WRITING_READS = frozenset({"/v1/consent-lookup/{code}"})


def begin_for(request: Request) -> Begin:
    """How the request's transactions begin: reads as reads, everything else as a write."""
    route = request.scope.get("route")
    if request.method in _READ_METHODS and getattr(route, "path", None) not in WRITING_READS:
        return Begin.READ
    return Begin.WRITE


async def get_db(
    ctx: Annotated[AppContext, Depends(get_context)], request: Request
) -> AsyncIterator[Session]:
    """A session per request, the request's one transaction: committed when the route returns,
    rolled back when anything raises (a domain error after a flush included), so a refusal
    half-way leaves the database as it was. Services only flush (`server.db`, "Who commits").

    `Db` runs this with FastAPI's `scope="function"`: the commit happens after the route returns
    and *before* the response is sent, so a client never reads an answer whose writes then fail
    to commit, and a failed commit is answered as the error it is.

    A read request's transaction takes no lock on SQLite and all its reads see one snapshot;
    any request's statements are bounded by the statement timeout (`server.db.bind_for`).

    `async`, with the commit or rollback in the thread pool only when there is one to do: making
    a session touches no database, and a route that commits itself (a check) leaves nothing
    open. A plain generator cost every request two thread-pool hops.
    """
    bind = bind_for(
        ctx.sessions.kw["bind"],
        begin_for(request),
        statement_timeout=ctx.settings.database_statement_timeout_seconds,
    )
    session = ctx.sessions(bind=bind)
    try:
        yield session
        if _has_work(session):
            await run_in_threadpool(session.commit)
    except BaseException:
        if _has_work(session):
            await run_in_threadpool(session.rollback)
        raise
    finally:
        # Nothing is open by now unless the rollback above was itself cut short (a cancelled
        # request): then this ends it, on the event loop but once.
        session.close()


def _has_work(session: Session) -> bool:
    """Whether ending `session` means a round trip: a transaction open, or objects added or
    changed that a commit would flush."""
    return session.in_transaction() or bool(session.new or session.dirty or session.deleted)


Db = Annotated[Session, Depends(get_db, scope="function")]
Ctx = Annotated[AppContext, Depends(get_context)]


def authenticate(
    ctx: Ctx,
    session: Db,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return in_good_standing(session, verified_bearer(ctx, credentials))


def verified_bearer(ctx: AppContext, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """Who the request's bearer token was issued to (signature, issuer, audience, expiry), as
    the token says; no database."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("a bearer access token is required")
    return verify_access_token(
        credentials.credentials, settings=ctx.settings, keys=ctx.keys, now=ctx.now()
    )


def in_good_standing(session: Session, claimed: Caller) -> Caller:
    """The caller a verified token names, as the registry has it now.

    A token outlives nothing: a principal disabled, moved or stripped of a role after the token
    was issued is judged by what the registry says now, not by the token's claims. A read: on
    SQLite in a transaction of its own that takes no lock (`read_step`).
    """
    with read_step(session):
        caller = caller_in_good_standing(session, claimed.principal_id)
    if caller is None or caller.org_id != claimed.org_id:
        raise InvalidToken("the principal of this token is not active")
    return caller


def ensure_permitted(caller: Caller, wanted: frozenset[Permission]) -> Caller:
    """`caller`, if its roles grant at least one of `wanted` (else 403)."""
    if not wanted & caller.permissions:
        names = " or ".join(sorted(p.value for p in wanted))
        raise PermissionDenied(f"this action needs the permission {names}")
    return caller


CurrentCaller = Annotated[Caller, Depends(authenticate)]


def require(permission: Permission) -> Callable[..., Awaitable[Caller]]:
    """Dependency: the authenticated caller, if its roles grant `permission` (else 403)."""
    return require_any(permission)


def require_any(*permissions: Permission) -> Callable[..., Awaitable[Caller]]:
    """Dependency: the caller, if its roles grant at least one of `permissions`.

    For routes whose answer is scoped by which permission the caller holds (network-wide vs own
    organisation statistics). The route then decides the scope with `caller.has(...)`.
    """
    if not permissions:
        raise ValueError("require_any needs at least one permission")
    wanted = frozenset(permissions)

    # `async` although it awaits nothing: a plain function would run in the thread pool, a hop
    # per request for a set intersection (`server.context.get_context`).
    async def dependency(caller: CurrentCaller) -> Caller:
        return ensure_permitted(caller, wanted)

    # Read by the authorisation matrix test: every non-public route must declare its permission.
    dependency.required_permissions = wanted  # type: ignore[attr-defined]
    return dependency


@dataclass(frozen=True)
class Bearer:
    """A request's verified token, for the registry to judge in the thread that does the
    route's work (`require_in_work`)."""

    claimed: Caller
    wanted: frozenset[Permission]

    def caller(self, session: Session) -> Caller:
        """The caller as the registry has it now, if its current roles grant the route's
        permission: `require`'s judgement, made here."""
        return ensure_permitted(in_good_standing(session, self.claimed), self.wanted)


def require_in_work(permission: Permission) -> Callable[..., Awaitable[Bearer]]:
    """Dependency for a route that runs its work in a thread of its own, `checks_at_once` at a
    time (the check, `server.checks.pacing`). Here, before the body is read, as with `require`:
    the token is verified (else 401) and the roles it names must grant `permission` (else 403).
    The route then calls `Bearer.caller` in its own thread, first thing, where the registry's
    word is read: the principal still active in its organisation, its current roles granting
    `permission` too. So both must grant it: a role given after the token was issued counts
    from the next token (at most `access_token_ttl_seconds` later), a role taken away at once.

    Why not `require`: its read of the registry runs in a thread of the pool beside the checks,
    and handing the interpreter lock to and fro with their cryptography cost a check about
    0.7 ms of CPU, a tenth of all it cost (loadtests/README.md).
    """
    wanted = frozenset({permission})

    async def dependency(
        ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Bearer:
        return Bearer(ensure_permitted(verified_bearer(ctx, credentials), wanted), wanted)

    dependency.required_permissions = wanted  # type: ignore[attr-defined]
    return dependency


def org_of_bearer(ctx: AppContext) -> Callable[[Scope], str]:
    """For admission control: the organisation a request's bearer token was issued to, checked
    as `authenticate` checks it (signature, issuer, audience, expiry; cached per token), but
    without the database. `server.admission.ANONYMOUS` without a valid token."""

    def org_of(scope: Scope) -> str:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    return ANONYMOUS
                try:
                    claimed = verify_access_token(
                        token.strip(), settings=ctx.settings, keys=ctx.keys, now=ctx.now()
                    )
                except DomainError:
                    return ANONYMOUS
                return claimed.org_id
        return ANONYMOUS

    return org_of
