"""`GET /v1/policy`: the network policy in force, as loaded and validated at start-up."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from server.auth.deps import Ctx, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller

router = APIRouter(tags=["policy"])


@router.get("/v1/policy")
def read_policy(
    ctx: Ctx, _caller: Annotated[Caller, Depends(require(Permission.POLICY_READ))]
) -> dict[str, Any]:
    """Members see the exact rules the server applies, so a refusal is never a surprise."""
    return ctx.policy.model_dump(mode="json")
