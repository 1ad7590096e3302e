"""`POST /v1/checks` for HR checkers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from server.auth.deps import Ctx, Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.checks.schemas import CheckRequest, CheckResponse
from server.checks.services import run_check

router = APIRouter(prefix="/v1/checks", tags=["checks"])


@router.post("", response_model=CheckResponse)
def check(
    body: CheckRequest,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CHECK_RUN))],
) -> Response:
    """One applicant's blinded keys in, evaluations, one proof and whole buckets out.

    The answer is written as JSON once (`server.checks.answer`): returned as a model, FastAPI
    would dump it, validate the dump against `response_model` and dump it again, entry by entry,
    and a check's buckets hold thousands of entries in a large registry. `response_model` still
    documents it.
    """
    answer = run_check(session, ctx, caller, body)
    return Response(content=answer.to_json(), media_type="application/json")
