"""Disclosure endpoints (docs/api.md, "Disclosure workflow") and the applicant's consent lookup.

Routes only translate: the services decide visibility, transitions and what is recorded.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response, status

from protocol.vocabulary import DisclosureState
from server.auth.deps import Ctx, Db, require, require_any
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.disclosures import services
from server.disclosures.models import DisclosureRequest
from server.disclosures.schemas import (
    ConsentLookupOut,
    DisclosureAnswerIn,
    DisclosureCreate,
    DisclosureList,
    DisclosureOut,
    DisclosureOutcomeIn,
    disclosure_out,
    lookup_out,
)
from server.paging import DEFAULT_LIMIT, Limit, Offset
from server.registry.services import org_names

router = APIRouter(tags=["disclosures"])

RequestId = Annotated[str, Path(max_length=36)]
# A lookup code is 16 symbols in groups; allow separators and spaces as typed from paper.
LookupCode = Annotated[str, Path(min_length=16, max_length=40)]


def _out(
    session: Db,
    ctx: Ctx,
    req: DisclosureRequest,
    role: Literal["holder", "requester", "oversight"],
) -> DisclosureOut:
    names = org_names(session, [req.holder_org_id, req.requester_org_id])
    return disclosure_out(req, role, names, ctx.now())


@router.post(
    "/v1/disclosure-requests",
    response_model=DisclosureOut,
    status_code=status.HTTP_201_CREATED,
)
def create_request(
    body: DisclosureCreate,
    ctx: Ctx,
    session: Db,
    response: Response,
    caller: Annotated[Caller, Depends(require(Permission.DISCLOSURE_REQUEST))],
) -> DisclosureOut:
    """Open a request on a proven match (201), or answer with the open one for the same
    applicant and record (200)."""
    opened = services.create_request(session, ctx, caller, body)
    if not opened.created:
        response.status_code = status.HTTP_200_OK
    return _out(session, ctx, opened.request, "requester")


@router.get("/v1/disclosure-requests", response_model=DisclosureList)
def list_requests(
    ctx: Ctx,
    session: Db,
    caller: Annotated[
        Caller,
        Depends(require_any(Permission.DISCLOSURE_READ, Permission.DISCLOSURE_OVERSIGHT)),
    ],
    role: Literal["holder", "requester"] | None = None,
    state: DisclosureState | None = None,
    overdue: bool | None = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> DisclosureList:
    page = services.list_requests(
        session,
        ctx,
        caller,
        role=role,
        state=state,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    names = org_names(
        session,
        [o for r, _ in page.items for o in (r.holder_org_id, r.requester_org_id)],
    )
    now = ctx.now()
    return DisclosureList(
        items=[disclosure_out(r, role_, names, now) for r, role_ in page.items],
        next_offset=page.next_offset,
    )


@router.get("/v1/disclosure-requests/{request_id}", response_model=DisclosureOut)
def read_request(
    request_id: RequestId,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.DISCLOSURE_READ))],
) -> DisclosureOut:
    req, side = services.get_request(session, caller, request_id)
    return _out(session, ctx, req, side)


@router.post("/v1/disclosure-requests/{request_id}/acknowledge", response_model=DisclosureOut)
def acknowledge(
    request_id: RequestId,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.DISCLOSURE_ANSWER))],
) -> DisclosureOut:
    return _out(session, ctx, services.acknowledge(session, ctx, caller, request_id), "holder")


@router.post("/v1/disclosure-requests/{request_id}/answer", response_model=DisclosureOut)
def answer(
    request_id: RequestId,
    body: DisclosureAnswerIn,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.DISCLOSURE_ANSWER))],
) -> DisclosureOut:
    req = services.answer(
        session,
        ctx,
        caller,
        request_id,
        bytes.fromhex(body.sealed_answer),
        not_same_person=body.not_same_person,
    )
    return _out(session, ctx, req, "holder")


@router.post("/v1/disclosure-requests/{request_id}/withdraw", response_model=DisclosureOut)
def withdraw(
    request_id: RequestId,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.DISCLOSURE_WITHDRAW))],
) -> DisclosureOut:
    return _out(session, ctx, services.withdraw(session, ctx, caller, request_id), "requester")


@router.post("/v1/disclosure-requests/{request_id}/close", response_model=DisclosureOut)
def close(
    request_id: RequestId,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.DISCLOSURE_REQUEST))],
) -> DisclosureOut:
    """The requester read the answer; the server deletes the ciphertext."""
    return _out(session, ctx, services.close(session, ctx, caller, request_id), "requester")


@router.post("/v1/disclosure-requests/{request_id}/outcome", response_model=DisclosureOut)
def report_outcome(
    request_id: RequestId,
    body: DisclosureOutcomeIn,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.DISCLOSURE_OUTCOME))],
) -> DisclosureOut:
    req = services.report_outcome(session, ctx, caller, request_id, body.outcome)
    return _out(session, ctx, req, "requester")


@router.get("/v1/consent-lookup/{code}", response_model=ConsentLookupOut)
def consent_lookup(
    code: LookupCode,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CONSENT_LOOKUP))],
) -> ConsentLookupOut:
    """For the applicant, through their HR contact or the secretariat: who checked under this
    consent and when, and which organisations were asked for a disclosure."""
    return lookup_out(services.consent_lookup(session, ctx, caller, code), ctx.now())


@router.post("/v1/consent-lookup/{code}/withdraw", response_model=ConsentLookupOut)
def consent_lookup_withdraw(
    code: LookupCode,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.CONSENT_LOOKUP))],
) -> ConsentLookupOut:
    view = services.consent_lookup_withdraw(session, ctx, caller, code)
    return lookup_out(view, ctx.now())
