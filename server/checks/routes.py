"""`POST /v1/checks` and `POST /v1/checks/{check_id}/entries` for HR checkers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from server.auth.deps import Ctx, Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.checks.schemas import CheckRequest, CheckResponse, EntriesRequest, EntriesResponse
from server.checks.services import claim_entries, run_check

router = APIRouter(prefix="/v1/checks", tags=["checks"])

CheckId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]


@router.post("", response_model=CheckResponse)
def check(
    body: CheckRequest,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CHECK_RUN))],
) -> CheckResponse:
    """Exactly `keys_per_check` blinded elements in; their evaluations, one proof and the signed
    filter header out. The same work whether or not the applicant is registered."""
    return run_check(session, ctx, caller, body)


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
