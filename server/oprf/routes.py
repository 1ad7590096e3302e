"""`GET /v1/oprf/key` and `POST /v1/oprf/evaluate` (blind evaluation for registration)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from server.audit.services import record
from server.auth.deps import Ctx, Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.errors import PolicyViolation
from server.oprf.schemas import OprfEvaluateRequest, OprfEvaluateResponse, OprfKey
from server.oprf.services import blind_evaluate, decode_elements
from server.registry.services import require_mou

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
    """Evaluate a focal point's blinded keys before registration.

    Gated like registration itself (focal point, MoU that permits registering) and audited with
    the element count, because an evaluation oracle is what a static Diffie-Hellman attack on the
    key (RFC 9497 section 7.2) or an unconsented lookup would need.
    """
    require_mou(session, caller.org_id, "register", ctx.now().date())
    if len(body.blinded_elements) > ctx.policy.max_keys_per_check:
        raise PolicyViolation(
            f"at most {ctx.policy.max_keys_per_check} elements per evaluation",
            rule="keys_per_case",
        )
    blinded = decode_elements(body.blinded_elements)
    evaluated, proof = blind_evaluate(ctx, blinded)
    record(
        session,
        ctx,
        caller,
        "oprf.evaluate",
        details={"purpose": body.purpose, "elements": len(blinded)},
    )
    session.commit()
    return OprfEvaluateResponse(
        key_id=ctx.keys.oprf_key_id,
        evaluated_elements=[e.hex() for e in evaluated],
        proof=proof.hex(),
    )
