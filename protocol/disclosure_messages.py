"""Wire messages of the disclosure workflow and the consent lookup (docs/api.md, "Disclosure
workflow"), shared by the server and the SDK like `protocol.messages`.

Requests forbid unknown fields; responses ignore them (a newer server may add one). Sealed blobs
are hex of exactly the fixed sizes of `protocol.disclosure`: a server that accepted other sizes
would let a buggy client leak the verdict through the length of its answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from protocol.disclosure import SEALED_ANSWER_SIZE, SEALED_DETAILS_SIZE
from protocol.vocabulary import DisclosureState, Outcome

__all__ = [
    "CLOSE_REASONS",
    "OUTCOMES",
    "STATES",
    "ConsentLookupCheck",
    "ConsentLookupOut",
    "ConsentLookupRequest",
    "DisclosureAnswerIn",
    "DisclosureCreate",
    "DisclosureList",
    "DisclosureOut",
    "DisclosureOutcomeIn",
]

#: `requested → acknowledged → answered → closed`, plus `withdrawn` and `expired`.
STATES: tuple[DisclosureState, ...] = tuple(DisclosureState)
#: Why a request left the open states.
CLOSE_REASONS = (
    "read",  # the requester read the answer and closed it
    "record_withdrawn",  # the holder withdrew the case (appeal upheld, rectification, ...)
    "record_purged",  # the case reached its retention date and was deleted
    "requester_withdrew",  # the requester no longer needs an answer
    "consent_withdrawn",  # the applicant withdrew the consent the request rests on
    "deadline_passed",  # unanswered long after the response deadline
)
#: The hiring outcomes the requester may report (the MDS yearly figures).
OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)

Role = Literal["holder", "requester", "oversight"]

_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
Uuid = Annotated[str, StringConstraints(pattern=_UUID)]
SealedAnswerHex = Annotated[
    str, StringConstraints(pattern=rf"^[0-9a-f]{{{2 * SEALED_ANSWER_SIZE}}}$")
]
SealedDetailsHex = Annotated[
    str, StringConstraints(pattern=rf"^[0-9a-f]{{{2 * SEALED_DETAILS_SIZE}}}$")
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DisclosureCreate(_Request):
    """`POST /v1/disclosure-requests`: ask the holder of a matched record for its answer.

    `check_id` and `entry_id` must be a verified claim of that check (`POST
    /v1/checks/{id}/entries`), made by the caller's organisation: only a check run under the
    applicant's consent can lead to a request, and the request is under that check's consent.
    The applicant's declared details are always sealed to the holder, so the holder confirms or
    denies that the applicant is the registered person.
    """

    check_id: Uuid
    entry_id: Uuid
    sealed_applicant_details: SealedDetailsHex


class DisclosureAnswerIn(_Request):
    """`POST /v1/disclosure-requests/{id}/answer`: the holder's signed answer, sealed to the
    requester (`protocol.disclosure.seal_answer`).

    `not_same_person` is the one part of an answer the server reads: the holder compared the
    applicant's sealed details and found another person. It is counted per requesting member
    for the secretariat, because a member's software could put other people's keys into a
    check's padding, and only the holders can notice (docs/protocol.md, "Check", step 6).
    """

    sealed_answer: SealedAnswerHex
    not_same_person: bool = False


class DisclosureOutcomeIn(_Request):
    """`POST /v1/disclosure-requests/{id}/outcome`: the applicant's hiring outcome."""

    outcome: Outcome


class DisclosureOut(_Response):
    """One request as the caller may see it.

    `role` says from which side: the holder sees the sealed applicant details, the requester
    the sealed answer and the outcome; the secretariat (`oversight`, overdue requests only) sees
    neither ids of records or consents nor any ciphertext.
    """

    id: Uuid
    role: Role
    requester_org_id: Uuid
    requester_org: str
    holder_org_id: Uuid
    holder_org: str
    state: DisclosureState
    created_at: AwareDatetime
    due_at: AwareDatetime
    overdue: bool
    case_id: Uuid | None = None
    entry_id: Uuid | None = None
    consent_id: Uuid | None = None
    acknowledged_at: AwareDatetime | None = None
    answered_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    close_reason: str | None = None
    outcome: Outcome | None = None
    outcome_at: AwareDatetime | None = None
    sealed_applicant_details: SealedDetailsHex | None = None
    sealed_answer: SealedAnswerHex | None = None


class DisclosureList(_Response):
    items: list[DisclosureOut]
    #: Offset of the next page, when there is one.
    next_offset: int | None = None


class ConsentLookupRequest(_Response):
    """A disclosure request made under the consent: to which organisation, when, and where it
    stands (the applicant's right to know who received their details)."""

    holder_org: str
    requested_at: AwareDatetime
    state: DisclosureState


class ConsentLookupCheck(_Response):
    org: str
    at: AwareDatetime


class ConsentLookupOut(_Response):
    """`GET /v1/consent-lookup/{code}`: what the applicant may know about the use of their
    consent. No applicant or position reference: the code holder sees the use, not HR's notes."""

    consent_id: Uuid
    org: str
    purpose: str
    status: Literal["active", "withdrawn", "expired"]
    consented_at: AwareDatetime
    expires_on: dt.date
    withdrawn_at: AwareDatetime | None = None
    checks: list[ConsentLookupCheck]
    disclosure_requests: list[ConsentLookupRequest]
