"""Wire shapes of the disclosure endpoints (`protocol.messages`, shared with the SDK)
and the mapping from rows to them, which decides what each side may see."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from protocol.messages import (
    ConsentLookupCheck,
    ConsentLookupOut,
    ConsentLookupRequest,
    DisclosureAnswerIn,
    DisclosureCreate,
    DisclosureList,
    DisclosureOut,
    DisclosureOutcomeIn,
)
from server.consents.services import consent_status
from server.disclosures.models import DisclosureRequest
from server.disclosures.services import Lookup, is_overdue

__all__ = [
    "ConsentLookupOut",
    "DisclosureAnswerIn",
    "DisclosureCreate",
    "DisclosureList",
    "DisclosureOut",
    "DisclosureOutcomeIn",
    "disclosure_out",
    "lookup_out",
]


def _hex(blob: bytes | None) -> str | None:
    return None if blob is None else bytes(blob).hex()


def disclosure_out(
    req: DisclosureRequest,
    role: Literal["holder", "requester", "oversight"],
    names: dict[str, str],
    now: datetime,
) -> DisclosureOut:
    """The request as `role` sees it.

    Holder: the record's ids and the applicant details sealed to it; not the hiring outcome
    (the requester's HR matter). Requester: the sealed answer and its outcome. Oversight (the
    secretariat, overdue requests only): organisations and dates, no record, consent or
    ciphertext, because IT staff who hold data must not read it.
    """
    oversight = role == "oversight"
    return DisclosureOut(
        id=req.id,
        role=role,
        requester_org_id=req.requester_org_id,
        requester_org=names.get(req.requester_org_id, ""),
        holder_org_id=req.holder_org_id,
        holder_org=names.get(req.holder_org_id, ""),
        state=req.state,
        created_at=req.created_at,
        due_at=req.due_at,
        overdue=is_overdue(req, now),
        case_id=None if oversight else req.case_id,
        entry_id=None if oversight else req.entry_id,
        consent_id=None if oversight else req.consent_id,
        acknowledged_at=req.acknowledged_at,
        answered_at=req.answered_at,
        closed_at=req.closed_at,
        close_reason=req.close_reason,
        outcome=req.outcome if role == "requester" else None,
        outcome_at=req.outcome_at if role == "requester" else None,
        sealed_applicant_details=_hex(req.sealed_applicant_details) if role == "holder" else None,
        sealed_answer=_hex(req.sealed_answer) if role == "requester" else None,
    )


def lookup_out(view: Lookup, now: datetime) -> ConsentLookupOut:
    consent = view.consent
    return ConsentLookupOut(
        consent_id=consent.id,
        org=view.org_name,
        purpose=consent.purpose,
        status=consent_status(consent, now.date()),
        consented_at=consent.consented_at,
        expires_on=consent.expires_on,
        withdrawn_at=consent.withdrawn_at,
        checks=[ConsentLookupCheck(org=org, at=at) for org, at in view.checks],
        disclosure_requests=[
            ConsentLookupRequest(holder_org=org, requested_at=at, state=state)
            for org, at, state in view.requests
        ],
    )
