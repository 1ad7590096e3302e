"""Recording what callers do. Every state change and every check goes through `record`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from server.audit.chain import append
from server.audit.models import AuditEntry
from server.auth.tokens import Caller
from server.context import AppContext


def record(
    session: Session,
    ctx: AppContext,
    caller: Caller | None,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an audit entry in the caller's transaction (`caller=None`: the system itself)."""
    return append(
        session,
        at=ctx.now(),
        action=action,
        actor_principal_id=caller.principal_id if caller else None,
        actor_org_id=caller.org_id if caller else None,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )
