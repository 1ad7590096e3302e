"""Auditors and admins page through the trail or export it as JSON lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from server.audit.schemas import AuditEntryOut, AuditPage
from server.audit.services import MAX_PAGE, export_session, iter_batches, page_entries
from server.auth.deps import Ctx, Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.context import AppContext

router = APIRouter(tags=["audit"])

AfterSeq = Annotated[int, Query(ge=0, le=2**62)]
NDJSON = "application/x-ndjson"


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
    """The trail from `after_seq` as JSON lines, one chunk per batch of entries.

    Its own session: the response streams after the request's dependencies have finished. It
    reads one snapshot (`export_session`) that takes no lock, so the export neither blocks a
    writer nor sees a half-written chain, however long it takes.
    """
    session = export_session(ctx)
    try:
        for batch in iter_batches(session, after_seq=after_seq):
            # The same serialisation as `GET /v1/audit`, so both read back identically.
            yield b"".join(
                AuditEntryOut.model_validate(entry).model_dump_json().encode() + b"\n"
                for entry in batch
            )
    finally:
        session.rollback()
        session.close()


@router.get(
    "/v1/audit/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One audit entry (as in `GET /v1/audit`) per line, in sequence order.",
            "content": {
                NDJSON: {"schema": {"type": "string", "description": "JSON lines (NDJSON)"}}
            },
        }
    },
)
def export_audit(
    ctx: Ctx,
    session: Db,
    _caller: Annotated[Caller, Depends(require(Permission.AUDIT_EXPORT))],
    after_seq: AfterSeq = 0,
) -> StreamingResponse:
    """The whole trail (or from `after_seq`), one JSON object per line, in sequence order."""
    # Authentication is done: give its connection back before the stream takes its own.
    session.close()
    return StreamingResponse(
        _ndjson(ctx, after_seq),
        media_type=NDJSON,
        headers={"Content-Disposition": 'attachment; filename="refcheck-audit.ndjson"'},
    )
