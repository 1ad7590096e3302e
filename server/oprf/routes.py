"""`GET /v1/oprf/key` and `POST /v1/oprf/evaluate` (blind evaluation for registration)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from server.auth.deps import Ctx, Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.oprf.evaluations import evaluate_for_registration
from server.oprf.schemas import OprfEvaluateRequest, OprfEvaluateResponse, OprfKey

router = APIRouter(prefix="/v1/oprf", tags=["oprf"])


@router.get("/key", response_model=OprfKey)
def get_key(
    ctx: Ctx, _caller: Annotated[Caller, Depends(require(Permission.OPRF_KEY_READ))]
) -> OprfKey:
    """The public key and its id, which the SDK pins and checks every proof against."""
    return OprfKey(key_id=ctx.keys.oprf_key_id, public_key=ctx.keys.oprf_public.hex())


@router.post("/evaluate", response_model=OprfEvaluateResponse)
def evaluate(
    body: OprfEvaluateRequest,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.OPRF_EVALUATE))],
) -> OprfEvaluateResponse:
    """Evaluate a focal point's blinded keys before registration (quota and audit: see
    `server.oprf.evaluations`)."""
    evaluated, proof = evaluate_for_registration(
        session, ctx, caller, body.purpose, body.blinded_elements
    )
    return OprfEvaluateResponse(
        key_id=ctx.keys.oprf_key_id,
        evaluated_elements=[e.hex() for e in evaluated],
        proof=proof.hex(),
    )
