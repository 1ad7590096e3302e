"""`POST /v1/checks` and `POST /v1/checks/{check_id}/entries` for HR checkers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.orm import Session

from server.auth.deps import Bearer, Ctx, Db, require, require_in_work
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.checks.pacing import CheckPacing
from server.checks.schemas import CheckRequest, CheckResponse, EntriesRequest, EntriesResponse
from server.checks.services import claim_entries, run_check
from server.context import AppContext

router = APIRouter(prefix="/v1/checks", tags=["checks"])

CheckId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]


async def check_pacing(request: Request) -> CheckPacing:
    """`async` although it awaits nothing: a plain function would run in the thread pool."""
    pacing: CheckPacing = request.app.state.check_pacing
    return pacing


@router.post("", response_model=CheckResponse)
async def check(
    body: CheckRequest,
    ctx: Ctx,
    session: Db,
    bearer: Annotated[Bearer, Depends(require_in_work(Permission.CHECK_RUN))],
    pacing: Annotated[CheckPacing, Depends(check_pacing)],
) -> CheckResponse:
    """Exactly `keys_per_check` blinded elements in; their evaluations, one proof and the signed
    filter header out. The same work whether or not the applicant is registered. Computed in a
    worker thread, `checks_at_once` at a time (`server.checks.pacing`), the caller's standing
    read first in the same thread."""
    return await pacing.run(_check, session, ctx, bearer, body)


def _check(session: Session, ctx: AppContext, bearer: Bearer, body: CheckRequest) -> CheckResponse:
    return run_check(session, ctx, bearer.caller(session), body)


@router.post("/{check_id}/entries", response_model=EntriesResponse)
def entries(
    check_id: CheckId,
    body: EntriesRequest,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CHECK_RUN))],
) -> EntriesResponse:
    """The sealed handles of the entries whose tags this check's claims prove."""
    return claim_entries(session, ctx, caller, check_id, body)
