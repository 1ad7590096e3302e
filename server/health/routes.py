"""Liveness and readiness, public so that a load balancer or orchestrator can probe them.

Neither answer carries anything but a status word: no version, path or database detail that
would help someone mapping the deployment.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.auth.deps import Ctx
from server.migrate import is_current

log = logging.getLogger("refcheck.server.health")

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process runs and answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: Ctx) -> JSONResponse:
    """Ready to serve: the database answers and its schema is at the code's migration head."""
    checks: dict[str, str] = {}
    session = ctx.sessions()
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
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not-ready", "checks": checks},
        status_code=200 if ready else 503,
    )
