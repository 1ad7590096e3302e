"""Auditors and admins page through the trail or export it as JSON lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from server.audit.schemas import AuditEntryOut, AuditPage
from server.audit.services import MAX_PAGE, iter_entries, page_entries
from server.auth.deps import Ctx, Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.context import AppContext

router = APIRouter(tags=["audit"])

AfterSeq = Annotated[int, Query(ge=0, le=2**62)]


@router.get("/v1/audit", response_model=AuditPage)
def read_audit(
    session: Db,
    _caller: Annotated[Caller, Depends(require(Permission.AUDIT_READ))],
    after_seq: AfterSeq = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditPage:
    entries, next_after = page_entries(session, after_seq=after_seq, limit=limit)
    return AuditPage(
        items=[AuditEntryOut.model_validate(e) for e in entries], next_after=next_after
    )


def _ndjson(ctx: AppContext, after_seq: int) -> Iterator[bytes]:
    # Its own session: the response streams after the request's dependencies have finished.
    session = ctx.sessions()
    try:
        for entry in iter_entries(session, after_seq=after_seq):
            # The same serialisation as `GET /v1/audit`, so both read back identically.
            yield AuditEntryOut.model_validate(entry).model_dump_json().encode() + b"\n"
    finally:
        session.rollback()
        session.close()


@router.get("/v1/audit/export")
def export_audit(
    ctx: Ctx,
    _caller: Annotated[Caller, Depends(require(Permission.AUDIT_EXPORT))],
    after_seq: AfterSeq = 0,
) -> StreamingResponse:
    """The whole trail (or from `after_seq`), one JSON object per line, in sequence order."""
    return StreamingResponse(
        _ndjson(ctx, after_seq),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="refcheck-audit.ndjson"'},
    )
