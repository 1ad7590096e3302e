"""Consent endpoints for HR checkers: record, read, withdraw (own organisation)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from server import cascades
from server.auth.deps import Ctx, Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.consents import services
from server.consents.schemas import ConsentCreate, ConsentOut, consent_out

router = APIRouter(prefix="/v1/consents", tags=["consents"])


@router.post("", response_model=ConsentOut, status_code=201)
def record_consent(
    body: ConsentCreate,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CONSENT_RECORD))],
) -> ConsentOut:
    """Record a consent receipt. The answer carries the applicant's lookup code, once."""
    consent, code = services.record_consent(session, ctx, caller, body)
    return consent_out(consent, ctx.now().date(), lookup_code=code)


@router.get("/{consent_id}", response_model=ConsentOut)
def read_consent(
    consent_id: str,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CONSENT_READ))],
) -> ConsentOut:
    return consent_out(services.own_consent(session, caller, consent_id), ctx.now().date())


@router.post("/{consent_id}/withdraw", response_model=ConsentOut)
def withdraw_consent(
    consent_id: str,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CONSENT_WITHDRAW))],
) -> ConsentOut:
    consent = cascades.withdraw_consent(session, ctx, caller, consent_id)
    return consent_out(consent, ctx.now().date())
