"""`GET /v1/registry/filter` (checkers and focal points) and `GET /v1/registry/fillers`
(admins and auditors), as docs/protocol.md, "The registry filter", specifies them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from protocol.messages import Fillers
from server.auth.deps import Ctx, Db, require, require_any
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.filter import services

router = APIRouter(prefix="/v1/registry", tags=["filter"])

OCTET_STREAM = "application/octet-stream"

# Checkers test their applicants against it; focal points need it for `verify-live` (that
# their own case's values are in it).
FilterReader = Annotated[
    Caller, Depends(require_any(Permission.CHECK_RUN, Permission.CASE_REGISTER))
]
# Who checks the filter's size and every filler: the secretariat's admins and its auditors.
FillerReader = Annotated[Caller, Depends(require(Permission.AUDIT_READ))]


@router.get(
    "/filter",
    response_class=Response,
    responses={
        200: {
            "content": {OCTET_STREAM: {}},
            "description": "`RCF2` (the full filter) or, for `since_sha256`, `RCD2` (a delta)",
        },
        304: {"description": "`If-None-Match` names the current revision"},
    },
)
def read_filter(
    ctx: Ctx,
    session: Db,
    _caller: FilterReader,
    since_sha256: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9a-f]{64}$",
            description="The `sha256` of a filter the client holds: answered by a delta when "
            "that list was published in the last 24 hours under the current key.",
        ),
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The newest revision of the registry filter, in full or as a delta."""
    services.publish_for_reading(session, ctx)
    answer = services.filter_response(
        session, ctx, if_none_match=if_none_match, since_sha256=since_sha256
    )
    # Only the client's own copy may be reused, and only after asking (the ETag makes that a
    # 304): a stale filter would miss a registration.
    headers = {"ETag": answer.etag, "Cache-Control": "private, no-cache"}
    if answer.body is None:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    body = services.cosigned_body(session, ctx, answer.body)
    return Response(content=body, media_type=OCTET_STREAM, headers=headers)


@router.get("/fillers", response_model=Fillers)
def read_fillers(ctx: Ctx, session: Db, _caller: FillerReader) -> Fillers:
    """Every filler of the newest revision, its point and one batch DLEQ proof."""
    services.publish_for_reading(session, ctx)
    return services.fillers(session, ctx)
