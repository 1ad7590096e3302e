"""Case endpoints for focal points: register, list, read, re-date, withdraw (own organisation)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header

from server import cascades
from server.auth.deps import Ctx, Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.cases import services
from server.cases.models import CaseStatus
from server.cases.schemas import (
    CaseCreate,
    CaseList,
    CaseOut,
    CaseRegistered,
    CaseRekey,
    CaseUpdate,
    CaseWithdraw,
    FilterValues,
    case_out,
)
from server.errors import NotFound
from server.paging import DEFAULT_LIMIT, Limit, Offset

router = APIRouter(prefix="/v1/cases", tags=["cases"])


@router.post("", response_model=CaseRegistered, status_code=201)
def register(
    body: CaseCreate,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CASE_REGISTER))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)] = None,
) -> CaseRegistered:
    """Register a case from its metadata and sealed keys; the answer gives the case's filter
    values and pad proofs, which the focal point keeps for `verify-live`, and the sequence
    number of its log entry (`log_seq`), to prove it is in the transparency log."""
    result = services.register_case(session, ctx, caller, body, idempotency_key=idempotency_key)
    return CaseRegistered(
        case=case_out(result.case), filter_values=result.filter_values, log_seq=result.log_seq
    )


@router.get("", response_model=CaseList)
def list_cases(
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CASE_READ))],
    status: Literal["active", "withdrawn"] | None = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> CaseList:
    """The organisation's cases, newest first; follow `next_offset` for the next page."""
    page = services.list_cases(session, caller, status, limit=limit, offset=offset)
    return CaseList(items=[case_out(c) for c in page.items], next_offset=page.next_offset)


@router.get("/{case_id}", response_model=CaseOut)
def read(
    case_id: str,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CASE_READ))],
) -> CaseOut:
    return case_out(services.own_case(session, caller, case_id))


@router.get("/{case_id}/filter-values", response_model=FilterValues)
def filter_values(
    case_id: str,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CASE_REGISTER))],
) -> FilterValues:
    """The case's filter values under the key in force, with its pads' proof: re-issued after
    each rotation, for the holder's `verify-live` (focal points of the holder only)."""
    case = services.own_case(session, caller, case_id)
    if case.status == CaseStatus.WITHDRAWN:
        # Its entries went with the withdrawal: there is nothing to re-issue (and an empty
        # answer would not be a valid FilterValues).
        raise NotFound("the case is withdrawn: it has no filter values")
    return services.stored_filter_values(session, ctx, case.id)


@router.post("/{case_id}/rekey", response_model=FilterValues)
def rekey(
    case_id: str,
    body: CaseRekey,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CASE_REGISTER))],
) -> FilterValues:
    """Swap the case's entries for keys its focal point derived again from the records it
    holds (after a change of identity tables); the answer is the case's new filter values."""
    return services.rekey_case(session, ctx, caller, case_id, body)


@router.patch("/{case_id}", response_model=CaseOut)
def update(
    case_id: str,
    body: CaseUpdate,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CASE_UPDATE))],
) -> CaseOut:
    return case_out(services.change_retention(session, ctx, caller, case_id, body.retention_until))


@router.post("/{case_id}/withdraw", response_model=CaseOut)
def withdraw(
    case_id: str,
    body: CaseWithdraw,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CASE_WITHDRAW))],
) -> CaseOut:
    case = cascades.withdraw_case(session, ctx, caller, case_id, body.reason, body.note)
    return case_out(case)
