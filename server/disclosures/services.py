"""The disclosure workflow's state machine: opening a request on a proven match, the holder's
acknowledgement and sealed answer, the requester's withdrawal, closing and outcome, the ends
other domains cause (`close_for_case`, `withdraw_for_consent`), and the applicant's consent
lookup. The deadlines (overdue, expiry, reminders) are `server.disclosures.deadlines`, a
periodic job that moves requests with this module's `finish`, `flag_overdue` and `audit`.

States (docs/api.md, "Disclosure workflow")::

    requested ──acknowledge──▶ acknowledged ──answer──▶ answered ──close──▶ closed (read)
        │  └───────────────answer──────────────────────▲
        ├─ withdraw (requester) / consent withdrawn ──▶ withdrawn
        ├─ unanswered, policy's expiry days after due ▶ expired (deadlines)
        └─ (any open state) case withdrawn / purged ───▶ closed (record_withdrawn / _purged)

Ended requests (closed, withdrawn, expired) are deleted by the retention sweeper the policy's
`disclosure_record_retention_days` after they ended (`server.retention.services`).

Every transition takes the row lock, re-reads the state, is audited in the same transaction,
and an action that is not allowed in the current state is refused with `invalid-transition`
naming that state. Repeating the action that produced the current state (acknowledge twice,
withdraw twice, close twice, the same outcome twice) answers with the request unchanged, so a
retried call is harmless.

The verdict of an answer is never stored, audited or counted: see `server.disclosures.models`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from protocol.messages import DisclosureCreate
from protocol.vocabulary import DisclosureState, Outcome
from server.audit.services import record
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.cases.models import Case, CaseStatus, Pseudonym
from server.checks.models import Check, CheckClaim
from server.consents.errors import ConsentExpired, ConsentWithdrawn
from server.consents.models import Consent
from server.consents.services import consent_by_code, consent_status, own_consent
from server.context import AppContext
from server.db import new_id
from server.disclosures.errors import HolderCannotAnswer, InvalidTransition, UnclaimedEntry
from server.disclosures.models import OPEN, UNANSWERED, DisclosureRequest
from server.errors import InvalidRequest, MouInactive, NotFound, PermissionDenied
from server.notifications.services import Event, notify
from server.paging import offset_page
from server.registry.models import Organisation, OrgStatus
from server.registry.services import matching_org_statuses, org_names, require_mou
from server.stats.services import Counter, increment

Side = Literal["holder", "requester"]
OUTCOME_COUNTERS = {
    Outcome.HIRED: Counter.APPLICANTS_HIRED,
    Outcome.NOT_HIRED_DISCLOSURE: Counter.APPLICANTS_REJECTED,
    Outcome.NOT_HIRED_OTHER: Counter.APPLICANTS_NOT_HIRED_OTHER,
}
# Requests whose answer the requester can no longer have read: the record went away first.
_RECORD_GONE = ("record_withdrawn", "record_purged")


def is_overdue(req: DisclosureRequest, now: datetime) -> bool:
    """Still waiting for the holder after its due date."""
    return req.state in UNANSWERED and now > req.due_at


def overdue_clause(now: datetime) -> ColumnElement[bool]:
    return and_(DisclosureRequest.state.in_(UNANSWERED), DisclosureRequest.due_at < now)


def audit(
    session: Session,
    ctx: AppContext,
    caller: Caller | None,
    action: str,
    req: DisclosureRequest,
    **details: object,
) -> None:
    record(
        session,
        ctx,
        caller,
        f"disclosure.{action}",
        object_type="disclosure_request",
        object_id=req.id,
        details={"state": req.state, **details},
    )


def _drop_ciphertexts(req: DisclosureRequest) -> None:
    """Delete what was sealed: once a request is final nobody may still need to open it, and
    the server is a relay, not an archive of findings or of applicants' details."""
    req.sealed_applicant_details = None
    req.sealed_answer = None


def finish(req: DisclosureRequest, state: str, reason: str, now: datetime) -> None:
    req.state = state
    req.close_reason = reason
    req.closed_at = now
    _drop_ciphertexts(req)


def flag_overdue(session: Session, req: DisclosureRequest, now: datetime) -> bool:
    """Count the request as overdue once (for the holder, in the month it fell due)."""
    if req.overdue_flagged_at is not None:
        return False
    req.overdue_flagged_at = now
    increment(session, req.holder_org_id, req.due_at, Counter.DISCLOSURE_REQUESTS_OVERDUE)
    return True


# --- opening a request ------------------------------------------------------------------------


def _live_entry(
    session: Session, ctx: AppContext, entry_id: str, today: date
) -> tuple[Pseudonym, Case, str] | None:
    """The entry, its case and its holder's status if the entry would match in a check today
    (same rules as the entries call, `server.checks.services.claim_entries`), else None."""
    row = session.execute(
        select(Pseudonym, Case, Organisation.status)
        .join(Case, Case.id == Pseudonym.case_id)
        .join(Organisation, Organisation.id == Case.org_id)
        .where(
            Pseudonym.id == entry_id,
            Case.status == CaseStatus.ACTIVE,
            Case.retention_until >= today,
            Organisation.status.in_(matching_org_statuses(ctx.policy)),
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


@dataclass(frozen=True)
class Opened:
    request: DisclosureRequest
    created: bool


def create_request(
    session: Session, ctx: AppContext, caller: Caller, req: DisclosureCreate
) -> Opened:
    """Open a disclosure request on a verified claim, and commit.

    The request names a check and an entry that the check's claim verified (docs/protocol.md,
    "Check", step 6): only a check run under the applicant's consent, by the caller's
    organisation, leads here, and the request is under that check's consent. An unknown check,
    another organisation's, an entry the check did not claim and an entry no longer live all
    raise the same `UnclaimedEntry`. One open request per consent and case: a second request
    for the same applicant and record (another matching key, a retry) answers with the open
    one.
    """
    now = ctx.now()
    today = now.date()
    require_mou(session, caller.org_id, "check", today)
    check = session.get(Check, req.check_id)
    claimed = (
        check is not None
        and check.org_id == caller.org_id
        and session.get(CheckClaim, (req.check_id, req.entry_id)) is not None
    )
    if not claimed or check is None:
        raise UnclaimedEntry()
    consent = own_consent(session, caller, check.consent_id, lock=True)
    status = consent_status(consent, today)
    if status == "withdrawn":
        raise ConsentWithdrawn("the applicant withdrew this consent")
    if status == "expired":
        raise ConsentExpired(f"the consent expired after {consent.expires_on.isoformat()}")
    live = _live_entry(session, ctx, req.entry_id, today)
    if live is None:
        raise UnclaimedEntry()
    pseudonym, case, holder_status = live
    if case.org_id == caller.org_id:
        raise InvalidRequest(
            "your own organisation holds this record: ask your focal point, not the network"
        )
    if holder_status != OrgStatus.ACTIVE:
        raise HolderCannotAnswer(
            "the organisation holding this record has left the network and cannot answer; "
            "ask the network secretariat"
        )

    existing = session.scalars(
        select(DisclosureRequest).where(
            DisclosureRequest.requester_org_id == caller.org_id,
            DisclosureRequest.consent_id == consent.id,
            DisclosureRequest.case_id == case.id,
            DisclosureRequest.state.in_(OPEN),
        )
    ).first()
    if existing is not None:
        return Opened(existing, created=False)

    details: str | None = req.sealed_applicant_details
    disclosure = DisclosureRequest(
        id=new_id(),
        requester_org_id=caller.org_id,
        requester_principal_id=caller.principal_id,
        holder_org_id=case.org_id,
        case_id=case.id,
        entry_id=pseudonym.id,
        consent_id=consent.id,
        state=DisclosureState.REQUESTED,
        sealed_applicant_details=None if details is None else bytes.fromhex(details),
        created_at=now,
        due_at=now + timedelta(days=ctx.policy.disclosure_response_deadline_days),
    )
    session.add(disclosure)
    audit(
        session,
        ctx,
        caller,
        "request",
        disclosure,
        holder_org_id=case.org_id,
        case_id=case.id,
        consent_id=consent.id,
        applicant_details=details is not None,
    )
    increment(session, caller.org_id, now, Counter.DISCLOSURE_REQUESTS_MADE)
    increment(session, case.org_id, now, Counter.DISCLOSURE_REQUESTS_RECEIVED)
    notify(session, ctx, Event.DISCLOSURE_REQUESTED, request=disclosure)
    session.flush()
    return Opened(disclosure, created=True)


# --- reading ----------------------------------------------------------------------------------


def sides_of(caller: Caller) -> tuple[Side, ...]:
    """From which sides a member may see requests: focal points (who answer) the holder's,
    HR checkers (who ask) the requester's. Least privilege: an HR account of the holder
    organisation has no business seeing that a record of its organisation was asked about."""
    sides: list[Side] = []
    if caller.has(Permission.DISCLOSURE_ANSWER):
        sides.append("holder")
    if caller.has(Permission.DISCLOSURE_REQUEST):
        sides.append("requester")
    return tuple(sides)


def side_of(caller: Caller, req: DisclosureRequest) -> Side | None:
    sides = sides_of(caller)
    if "holder" in sides and req.holder_org_id == caller.org_id:
        return "holder"
    if "requester" in sides and req.requester_org_id == caller.org_id:
        return "requester"
    return None


def _visible(
    session: Session, caller: Caller, request_id: str, side: Side | None, *, lock: bool = False
) -> tuple[DisclosureRequest, Side]:
    """A request the caller sees (from `side`, if given); anything else answers 404 exactly like
    an unknown id, so a third organisation learns nothing, not even that the id exists."""
    stmt = select(DisclosureRequest).where(DisclosureRequest.id == request_id)
    if lock:
        stmt = stmt.with_for_update()
    req = session.scalars(stmt).first()
    seen = None if req is None else side_of(caller, req)
    if req is None or seen is None or (side is not None and seen != side):
        raise NotFound("no such disclosure request")
    return req, seen


def get_request(
    session: Session, caller: Caller, request_id: str
) -> tuple[DisclosureRequest, Side]:
    return _visible(session, caller, request_id, None)


@dataclass(frozen=True)
class Page:
    items: list[tuple[DisclosureRequest, Literal["holder", "requester", "oversight"]]]
    next_offset: int | None


def list_requests(
    session: Session,
    ctx: AppContext,
    caller: Caller,
    *,
    role: Side | None,
    state: str | None,
    overdue: bool | None,
    limit: int,
    offset: int,
) -> Page:
    """Members: requests where their organisation is on a side they may see. The secretariat
    (`DISCLOSURE_OVERSIGHT`): overdue requests network-wide, metadata only (the route strips
    ids and ciphertexts), so it can chase late holders without reading anything."""
    now = ctx.now()
    stmt = select(DisclosureRequest)
    oversight = caller.has(Permission.DISCLOSURE_OVERSIGHT) and not sides_of(caller)
    if oversight:
        if overdue is False or role is not None:
            raise InvalidRequest(
                "the secretariat lists overdue requests only (overdue=true, no role)"
            )
        stmt = stmt.where(overdue_clause(now))
        chosen: tuple[Side, ...] = ()
    else:
        allowed = sides_of(caller)
        if role is not None and role not in allowed:
            raise PermissionDenied(f"your role does not see requests as {role}")
        chosen = (role,) if role is not None else allowed
        clauses = []
        if "holder" in chosen:
            clauses.append(DisclosureRequest.holder_org_id == caller.org_id)
        if "requester" in chosen:
            clauses.append(DisclosureRequest.requester_org_id == caller.org_id)
        stmt = stmt.where(or_(*clauses))
        if overdue is True:
            stmt = stmt.where(overdue_clause(now))
        elif overdue is False:
            stmt = stmt.where(~overdue_clause(now))
    if state is not None:
        stmt = stmt.where(DisclosureRequest.state == state)
    stmt = stmt.order_by(DisclosureRequest.created_at.desc(), DisclosureRequest.id)
    page = offset_page(session, stmt, limit=limit, offset=offset)
    items: list[tuple[DisclosureRequest, Literal["holder", "requester", "oversight"]]] = []
    for req in page.items:
        if oversight:
            items.append((req, "oversight"))
        else:
            seen = side_of(caller, req)
            assert seen is not None and seen in chosen
            items.append((req, seen))
    return Page(items=items, next_offset=page.next_offset)


# --- the holder's side ------------------------------------------------------------------------


def acknowledge(
    session: Session, ctx: AppContext, caller: Caller, request_id: str
) -> DisclosureRequest:
    """The holder's focal point has seen the request (the clock keeps running until it answers)."""
    req, _ = _visible(session, caller, request_id, "holder", lock=True)
    if req.state == DisclosureState.ACKNOWLEDGED:
        return req
    if req.state != DisclosureState.REQUESTED:
        raise InvalidTransition(
            f"a request in state {req.state} cannot be acknowledged", state=req.state
        )
    req.state = DisclosureState.ACKNOWLEDGED
    req.acknowledged_at = ctx.now()
    audit(session, ctx, caller, "acknowledge", req)
    session.flush()
    return req


def answer(
    session: Session,
    ctx: AppContext,
    caller: Caller,
    request_id: str,
    sealed_answer: bytes,
    *,
    not_same_person: bool = False,
) -> DisclosureRequest:
    """Store the holder's sealed answer. Disclosing needs the holder's MoU in force, as
    registering did; an answer is final (a changed answer after the requester may have read
    the first would be a second disclosure, not a correction: withdraw the case instead)."""
    now = ctx.now()
    req, _ = _visible(session, caller, request_id, "holder", lock=True)
    if req.state not in UNANSWERED:
        raise InvalidTransition(
            f"a request in state {req.state} cannot be answered", state=req.state
        )
    holder = session.get(Organisation, caller.org_id)
    refusal = None if holder is None else holder.mou_refusal(now.date(), action="disclose")
    if holder is None or refusal is not None:
        raise MouInactive(refusal or "the organisation is not in the registry")
    late = now > req.due_at
    if late:
        flag_overdue(session, req, now)
    req.state = DisclosureState.ANSWERED
    req.sealed_answer = sealed_answer
    req.answered_at = now
    if req.acknowledged_at is None:
        req.acknowledged_at = now
    # The details were for the holder to compare; it has answered, so they have served.
    req.sealed_applicant_details = None
    audit(session, ctx, caller, "answer", req, late=late)
    increment(session, req.holder_org_id, now, Counter.DISCLOSURE_RESPONSES_GIVEN)
    increment(session, req.requester_org_id, now, Counter.DISCLOSURE_RESPONSES_RECEIVED)
    if not_same_person:
        increment(session, req.requester_org_id, now, Counter.NOT_SAME_PERSON_ANSWERS)
    notify(session, ctx, Event.DISCLOSURE_ANSWERED, request=req)
    session.flush()
    return req


# --- the requester's side ---------------------------------------------------------------------


def withdraw(
    session: Session, ctx: AppContext, caller: Caller, request_id: str
) -> DisclosureRequest:
    """The requester no longer needs an answer (the applicant withdrew, the post was filled)."""
    req, _ = _visible(session, caller, request_id, "requester", lock=True)
    if req.state == DisclosureState.WITHDRAWN:
        return req
    if req.state not in UNANSWERED:
        raise InvalidTransition(
            f"a request in state {req.state} cannot be withdrawn", state=req.state
        )
    finish(req, DisclosureState.WITHDRAWN, "requester_withdrew", ctx.now())
    audit(session, ctx, caller, "withdraw", req, reason=req.close_reason)
    notify(session, ctx, Event.DISCLOSURE_WITHDRAWN, request=req)
    session.flush()
    return req


def close(session: Session, ctx: AppContext, caller: Caller, request_id: str) -> DisclosureRequest:
    """The requester has read the answer: the request closes and the ciphertext is deleted."""
    req, _ = _visible(session, caller, request_id, "requester", lock=True)
    if req.state == DisclosureState.CLOSED:
        return req
    if req.state != DisclosureState.ANSWERED:
        raise InvalidTransition(
            f"only an answered request can be closed; this one is {req.state}", state=req.state
        )
    finish(req, DisclosureState.CLOSED, "read", ctx.now())
    audit(session, ctx, caller, "close", req, reason=req.close_reason)
    session.flush()
    return req


def _received_an_answer(req: DisclosureRequest) -> bool:
    return req.answered_at is not None and req.close_reason not in _RECORD_GONE


def report_outcome(
    session: Session, ctx: AppContext, caller: Caller, request_id: str, outcome: Outcome
) -> DisclosureRequest:
    """Record the applicant's hiring outcome.

    The outcome belongs to the applicant, that is to the consent: it is recorded on every
    request of the requester under the same consent and counted once, so an applicant matched
    at two holders is one applicant rejected, not two. `not_hired_disclosure` needs an answer
    that reached the requester; a different outcome than one already reported is refused.
    """
    now = ctx.now()
    req, _ = _visible(session, caller, request_id, "requester", lock=True)
    siblings = list(
        session.scalars(
            select(DisclosureRequest)
            .where(
                DisclosureRequest.requester_org_id == req.requester_org_id,
                DisclosureRequest.consent_id == req.consent_id,
            )
            .with_for_update()
        )
    )
    reported = {s.outcome for s in siblings if s.outcome is not None}
    if reported:
        if reported == {outcome}:
            for sibling in siblings:
                if sibling.outcome is None:
                    sibling.outcome, sibling.outcome_at = outcome, now
            session.flush()
            return req
        raise InvalidTransition(
            f"the outcome for this applicant was already reported as {sorted(reported)[0]} "
            f"(request {req.state})",
            state=req.state,
        )
    if outcome == Outcome.NOT_HIRED_DISCLOSURE and not any(
        _received_an_answer(s) for s in siblings
    ):
        raise InvalidTransition(
            "not_hired_disclosure needs an answer received under this consent "
            f"(request {req.state})",
            state=req.state,
        )
    for sibling in siblings:
        sibling.outcome, sibling.outcome_at = outcome, now
    audit(session, ctx, caller, "outcome", req, outcome=outcome, requests=len(siblings))
    increment(session, req.requester_org_id, now, OUTCOME_COUNTERS[outcome])
    session.flush()
    return req


# --- events from other domains (called inside their transactions) ----------------------------


def close_for_case(
    session: Session, ctx: AppContext, caller: Caller | None, case_id: str, reason: str
) -> int:
    """Close every open request about a case that is being withdrawn or purged, in the caller's
    transaction (not committed here): a finding overturned on appeal must not reach a requester
    afterwards, so answers not yet read are deleted with it. Returns how many were closed."""
    now = ctx.now()
    open_requests = list(
        session.scalars(
            select(DisclosureRequest)
            .where(DisclosureRequest.case_id == case_id, DisclosureRequest.state.in_(OPEN))
            .order_by(DisclosureRequest.id)
            .with_for_update()
        )
    )
    for req in open_requests:
        finish(req, DisclosureState.CLOSED, reason, now)
        audit(session, ctx, caller, "close", req, reason=reason)
    return len(open_requests)


def withdraw_for_consent(
    session: Session, ctx: AppContext, caller: Caller | None, consent_id: str
) -> int:
    """The applicant withdrew their consent: unanswered requests under it stop (withdrawn,
    `consent_withdrawn`) and their sealed details are deleted; in the caller's transaction.
    Answered ones stay: the answer was lawfully given and the requester may read it."""
    now = ctx.now()
    waiting = list(
        session.scalars(
            select(DisclosureRequest)
            .where(
                DisclosureRequest.consent_id == consent_id,
                DisclosureRequest.state.in_(UNANSWERED),
            )
            .order_by(DisclosureRequest.id)
            .with_for_update()
        )
    )
    for req in waiting:
        finish(req, DisclosureState.WITHDRAWN, "consent_withdrawn", now)
        audit(session, ctx, caller, "withdraw", req, reason="consent_withdrawn")
        notify(session, ctx, Event.DISCLOSURE_WITHDRAWN, request=req)
    return len(waiting)


# --- the applicant's consent lookup -----------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    consent: Consent
    org_name: str
    checks: list[tuple[str, datetime]]
    requests: list[tuple[str, datetime, str]]


def _lookup_view(session: Session, consent: Consent) -> Lookup:
    checks: list[tuple[str, datetime]] = [
        (org_id, at)
        for org_id, at in session.execute(
            select(Check.org_id, Check.at).where(Check.consent_id == consent.id).order_by(Check.at)
        )
    ]
    requests: list[tuple[str, datetime, str]] = [
        (org_id, at, state)
        for org_id, at, state in session.execute(
            select(
                DisclosureRequest.holder_org_id,
                DisclosureRequest.created_at,
                DisclosureRequest.state,
            )
            .where(DisclosureRequest.consent_id == consent.id)
            .order_by(DisclosureRequest.created_at)
        )
    ]
    names = org_names(
        session, [consent.org_id, *(o for o, _ in checks), *(o for o, _, _ in requests)]
    )
    return Lookup(
        consent=consent,
        org_name=names.get(consent.org_id, ""),
        checks=[(names.get(o, ""), at) for o, at in checks],
        requests=[(names.get(o, ""), at, state) for o, at, state in requests],
    )


def consent_lookup(session: Session, ctx: AppContext, caller: Caller, code: str) -> Lookup:
    """Which organisations checked under the consent with this code, and when; and which
    organisations were asked for a disclosure about it. The lookup itself is audited."""
    consent = consent_by_code(session, caller, code)
    view = _lookup_view(session, consent)
    record(session, ctx, caller, "consent.lookup", object_type="consent", object_id=consent.id)
    session.flush()
    return view


def consent_lookup_withdraw(session: Session, ctx: AppContext, caller: Caller, code: str) -> Lookup:
    """The applicant withdraws their consent through their HR contact or the secretariat: no
    later check may use it and unanswered disclosure requests under it stop. Repeating it
    changes nothing."""
    now = ctx.now()
    consent = consent_by_code(session, caller, code, lock=True)
    if consent.withdrawn_at is None:
        consent.withdrawn_at = now
        stopped = withdraw_for_consent(session, ctx, caller, consent.id)
        record(
            session,
            ctx,
            caller,
            "consent.withdraw",
            object_type="consent",
            object_id=consent.id,
            details={"via": "lookup", "disclosure_requests_stopped": stopped},
        )
        increment(session, consent.org_id, now, Counter.CONSENTS_WITHDRAWN)
    view = _lookup_view(session, consent)
    session.flush()
    return view
