"""Liveness and readiness, public so that a load balancer or orchestrator can probe them.

Neither answer carries anything but status words: no version, path or database detail that
would help someone mapping the deployment.

Both answer whatever the load (issue 15). `/healthz` is a coroutine that touches neither the
database nor the thread pool, so it answers from the event loop even while every thread and
connection is taken. `/readyz` runs its database check in a thread of its own budget (one at a
time per worker, at most `readiness_timeout_seconds`), outside the admission queue, and says
`busy` when the worker is shedding load or the database does not answer in time: a load
balancer then sends new work elsewhere, which is what "not ready" is for.
"""

from __future__ import annotations

import logging
from typing import Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.admission import Admission
from server.context import AppContext, context_of
from server.db import Begin, bind_for
from server.migrate import is_current

log = logging.getLogger("refcheck.server.health")

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not-ready", "busy"]
    checks: dict[str, str]


@router.get("/healthz", response_model=Liveness)
async def healthz() -> JSONResponse:
    """The process runs and its event loop answers."""
    return JSONResponse({"status": "ok"})


def _check_database(ctx: AppContext) -> dict[str, str]:
    checks: dict[str, str] = {}
    bind = bind_for(
        ctx.sessions.kw["bind"],
        Begin.READ,
        statement_timeout=ctx.settings.readiness_timeout_seconds,
    )
    session = ctx.sessions(bind=bind)
    try:
        connection = session.connection()
        connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = "ok" if is_current(connection) else "pending"
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        checks["database"] = "unreachable"
        checks["migrations"] = "unknown"
    finally:
        session.rollback()
        session.close()
    return checks


def _readiness_limiter(request: Request) -> anyio.CapacityLimiter:
    """One readiness check at a time per worker (created on the worker's event loop): a flood
    of probes takes at most one thread and one connection, and a probe that finds the check
    running waits for it within its own budget."""
    limiter = getattr(request.app.state, "readiness_limiter", None)
    if not isinstance(limiter, anyio.CapacityLimiter):
        limiter = request.app.state.readiness_limiter = anyio.CapacityLimiter(1)
    return limiter


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready, or busy."}},
)
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: not shedding load, the database answers within the readiness budget,
    and its schema is at the code's migration head."""
    ctx = context_of(request)
    admission = getattr(request.app.state, "admission", None)
    checks: dict[str, str] = {}
    status = "ready"
    if isinstance(admission, Admission) and admission.busy():
        checks["capacity"] = "busy"
        status = "busy"
    with anyio.move_on_after(ctx.settings.readiness_timeout_seconds) as scope:
        checks.update(
            await anyio.to_thread.run_sync(
                _check_database, ctx, limiter=_readiness_limiter(request), abandon_on_cancel=True
            )
        )
    if scope.cancelled_caught:
        checks["database"] = "busy"
        status = "busy"
    if status == "ready" and any(v != "ok" for v in checks.values()):
        status = "not-ready"
    return JSONResponse(
        {"status": status, "checks": checks}, status_code=200 if status == "ready" else 503
    )
