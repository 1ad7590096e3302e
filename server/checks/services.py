"""Running a check and answering its claims (docs/protocol.md, "Check", steps 3 and 5).

A check is the same work whether or not the applicant is registered: exactly `keys_per_check`
blinded elements in, their evaluations, one proof and the signed filter header out. The server
never unblinds anything, so it cannot tell a match from a miss; the client tests its own keys
against the filter. Only a hit comes back, as claims: the tag of a key and a Schnorr proof that
the claimant knows the blind linking it to this check's evaluation. So entries are handed out
only for the applicant of a consented check, and a claim recorded here is what a disclosure
request must name.

The check is recorded (who, when, which consent, under which key); the elements are not. The
evaluations `Z_i` are kept for `entry_fetch_window_seconds` to verify claims, then cleared. A
refused check is recorded too (`check.refused`: why), because refusals are where fishing shows.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from protocol.claim import verify_claim
from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.keyops import ELEMENT_SIZE
from server.audit.services import record, refusal_details
from server.auth.tokens import Caller
from server.cases.models import Case, CaseStatus, Pseudonym
from server.checks.errors import ClaimInvalid, EntryWindowClosed, KeyRotated, WrongElementCount
from server.checks.models import Check, CheckClaim
from server.checks.schemas import (
    CheckRequest,
    CheckResponse,
    EntriesRequest,
    EntriesResponse,
    EntryOut,
)
from server.consents.errors import ConsentExhausted
from server.consents.models import Consent
from server.consents.services import ensure_unexpired, ensure_usable, own_consent
from server.context import AppContext
from server.db import commit_for_key_work, new_id, read_step
from server.errors import DomainError, NotFound
from server.filter.services import current_filter_header
from server.oprf.services import (
    KeyInForce,
    blind_evaluate,
    current_key,
    decode_elements,
    key_in_force,
    require_current_key,
    unwrap,
)
from server.quotas.services import take_daily, within_daily
from server.registry.models import Organisation
from server.registry.services import matching_org_statuses, require_mou
from server.stats.services import Counter, increment

log = logging.getLogger("refcheck.server.checks")

_consent_table = cast(Table, Consent.__table__)
_consents = _consent_table.c
_SPEND_ONE_CHECK = (
    update(_consent_table)
    .where(
        _consents.id == bindparam("consent_id"),
        _consents.checks_used < _consents.max_checks,
        _consents.withdrawn_at.is_(None),
        _consents.expires_on >= bindparam("today"),
    )
    .values(checks_used=_consents.checks_used + 1)
)

#: A check is one row: inserted as a statement rather than through the ORM's unit of work, whose
#: flush cost a check several times the INSERT itself (loadtests/README.md).
_INSERT_CHECK = insert(cast(Table, Check.__table__))


def _spend_one_check(session: Session, caller: Caller, consent_id: str, today: date) -> None:
    """Take one check from the consent's budget in one conditional UPDATE, so concurrent checks
    under one consent cannot overspend it (a read-then-write would let both pass), and a
    withdrawal or expiry since the check's controls read the consent still stops it."""
    result = cast(
        CursorResult[Any],
        session.connection().execute(_SPEND_ONE_CHECK, {"consent_id": consent_id, "today": today}),
    )
    if result.rowcount != 1:
        ensure_usable(own_consent(session, caller, consent_id), today)
        raise ConsentExhausted("all checks of this consent were used")


def run_check(
    session: Session, ctx: AppContext, caller: Caller, req: CheckRequest
) -> CheckResponse:
    """Run one check and commit; a refusal spends no budget, stores nothing of the check and
    is recorded on its own (`record_refused_check`) before it is raised unchanged."""
    try:
        return _run_check(session, ctx, caller, req)
    except DomainError as refusal:
        record_refused_check(session, ctx, caller, req, refusal)
        raise


def record_refused_check(
    session: Session, ctx: AppContext, caller: Caller, req: CheckRequest, refusal: DomainError
) -> None:
    """Audit a refused check (`check.refused`) and count it (`checks_refused`), in a transaction
    of its own after the refused one is rolled back, committed here: the request rolls back on
    the refusal it raises next, which must not undo this record (`server.db`, "Who commits").

    Refusals are what fishing looks like (an expired or foreign consent tried, a quota hit, a
    wrong element count), so the network admin must see them although nothing was done.
    Recorded: the problem slug and the policy rule if any; the consent only as the id of one of
    the caller's own consents. Never the elements or anything the consent says about the
    applicant. Whatever happens here, the caller gets the original refusal: a failure to record
    is logged (by class name only) and rolled back.
    """
    session.rollback()
    try:
        consent_id = session.scalar(
            select(Consent.id).where(Consent.id == req.consent_id, Consent.org_id == caller.org_id)
        )
        record(
            session,
            ctx,
            caller,
            "check.refused",
            object_type="consent" if consent_id is not None else None,
            object_id=consent_id,
            details=refusal_details(refusal),
        )
        increment(session, caller.org_id, ctx.now(), Counter.CHECKS_REFUSED)
        session.commit()
    except Exception as exc:  # noqa: BLE001 - the refusal, not this failure, is the answer
        session.rollback()
        log.error("could not record a refused check: %s", type(exc).__name__)


def _rerun_allowed(
    session: Session,
    ctx: AppContext,
    caller: Caller,
    req: CheckRequest,
    now: datetime,
    key_seq: int,
) -> bool:
    """A re-run after a rotation: once per original check, by the same principal under the same
    consent, within the window, and only for a check under an older key (after its 409)."""
    if req.rerun_of is None:
        return False
    original = session.get(Check, req.rerun_of)
    if (
        original is None
        or original.principal_id != caller.principal_id
        or original.consent_id != req.consent_id
        or original.key_seq >= key_seq
        or not _within_window(ctx, original, now)
    ):
        raise NotFound("no check to re-run")
    already = session.scalar(select(Check.id).where(Check.rerun_of == original.id))
    if already is not None:
        # Once per original check: a re-run spends no budget, so repeating it would give a
        # free evaluation per call.
        raise NotFound("this check was already re-run")
    return True


def _within_window(ctx: AppContext, check: Check, now: datetime) -> bool:
    window = timedelta(seconds=ctx.policy.entry_fetch_window_seconds)
    at = check.at if check.at.tzinfo is not None else check.at.replace(tzinfo=now.tzinfo)
    return check.evaluated is not None and now <= at + window


def _run_check(
    session: Session, ctx: AppContext, caller: Caller, req: CheckRequest
) -> CheckResponse:
    """The controls, then the evaluation with no transaction of the check's open, then the
    record of the check.

    Why in that order: the evaluation is most of a check's work (the key's 2n + 2
    multiplications, about 3 ms). Inside the write transaction it held SQLite's one write lock,
    and on PostgreSQL the organisation's `daily_usage` row, for its whole length, so the checks
    of a network (of an organisation) ran one at a time whatever the cores (issue 17). So every
    control runs first, in a read that takes no lock (`_controls`), and a refused check costs no
    multiplication. The write then re-checks what may have changed meanwhile (the MoU; that the
    key evaluated with is still the one in force; the consent's budget, withdrawal and expiry in
    the conditional update that spends it), and commits the check, its quota and its audit entry
    before any evaluation leaves (`commit_for_key_work`). An evaluation of a check refused there
    is dropped unseen.
    """
    now = ctx.now()
    today = now.date()
    with read_step(session):
        in_force, rerun, blinded = _controls(session, ctx, caller, req, now)
    evaluated, proof = blind_evaluate(ctx, blinded, key=in_force.key)
    require_mou(session, caller.org_id, "check", today)
    require_current_key(ctx, req.key_id, current=key_in_force(session, ctx, lock="share").key)
    take_daily(session, ctx.policy, caller.org_id, now, checks=1)
    if rerun:
        # Again under the write: two re-runs of one check racing, only one may pass.
        _rerun_allowed(session, ctx, caller, req, now, in_force.seq)
        ensure_unexpired(own_consent(session, caller, req.consent_id), today)
    else:
        _spend_one_check(session, caller, req.consent_id, today)
    check_id = new_id()
    session.connection().execute(
        _INSERT_CHECK,
        {
            "id": check_id,
            "org_id": caller.org_id,
            "consent_id": req.consent_id,
            "principal_id": caller.principal_id,
            "at": now,
            "key_seq": in_force.seq,
            "evaluated": b"".join(evaluated),
            "rerun_of": req.rerun_of,
        },
    )
    increment(session, caller.org_id, now, Counter.CHECKS_RUN)
    record(session, ctx, caller, "check.run", object_type="consent", object_id=req.consent_id)
    header = current_filter_header(session, ctx, key_read=True)  # read above, in this write
    commit_for_key_work(session)  # the evaluations leave in the answer below
    return CheckResponse(
        check_id=check_id,
        key_id=req.key_id,
        evaluated_elements=[e.hex() for e in evaluated],
        proof=proof.hex(),
        filter=header.hex(),
    )


def _controls(
    session: Session, ctx: AppContext, caller: Caller, req: CheckRequest, now: datetime
) -> tuple[KeyInForce, bool, list[bytes]]:
    """Everything that may refuse a check before the key works: the MoU, the consent (the
    caller's own, usable; a re-run only unexpired, as it spends no budget), the key the client
    blinded for, the day's quota as it stands, the number of elements and each element.
    Returns the key in force, whether this is a re-run, and the decoded elements."""
    today = now.date()
    require_mou(session, caller.org_id, "check", today)
    consent = own_consent(session, caller, req.consent_id)
    in_force = key_in_force(session, ctx, lock="share")
    rerun = _rerun_allowed(session, ctx, caller, req, now, in_force.seq)
    if rerun:
        ensure_unexpired(consent, today)
    else:
        ensure_usable(consent, today)
    require_current_key(ctx, req.key_id, current=in_force.key)
    policy = ctx.policy
    within_daily(session, policy, caller.org_id, now, checks=1)
    if len(req.blinded_elements) != policy.keys_per_check:
        raise WrongElementCount(
            f"a check carries exactly {policy.keys_per_check} blinded elements",
            keys_per_check=policy.keys_per_check,
        )
    return in_force, rerun, decode_elements(req.blinded_elements)


_entries = Pseudonym.__table__.c
_cases = Case.__table__.c
_orgs = Organisation.__table__.c
_ENTRIES_BY_TAG = (
    select(_entries.id, _entries.tag, _entries.p_hat, _entries.sealed_handle)
    .join(Case.__table__, _cases.id == _entries.case_id)
    .join(Organisation.__table__, _orgs.id == _cases.org_id)
    .where(
        _entries.key_seq == bindparam("key_seq"),
        _entries.tag.in_(bindparam("tags", expanding=True)),
        _orgs.status.in_(bindparam("statuses", expanding=True)),
        _cases.status == CaseStatus.ACTIVE,
        _cases.retention_until >= bindparam("today"),
    )
)


def claim_entries(
    session: Session, ctx: AppContext, caller: Caller, check_id: str, req: EntriesRequest
) -> EntriesResponse:
    """Verify each claim against the check's own evaluation and answer every live entry of an
    active holder with a verified tag; record `(check_id, entry_id)` for each.

    A claim for a tag no live entry has (a false positive of the filter) is answered with
    nothing: without that entry's `P` there is nothing to verify it against, and nothing to
    hand out. A repeat of a verified claim gets the same answer.
    """
    now = ctx.now()
    check = session.get(Check, check_id)
    # Only the principal that ran the check may claim from it: another account of the same
    # member has no consent of its own for this applicant.
    if check is None or check.principal_id != caller.principal_id:
        raise NotFound("no such check")
    current_key(session, ctx)
    if check.key_seq != ctx.keys.oprf_key_seq:
        raise KeyRotated("run the check again with rerun_of naming this one")
    if not _within_window(ctx, check, now):
        raise EntryWindowClosed(
            f"claims are accepted for {ctx.policy.entry_fetch_window_seconds} s after a check"
        )
    evaluated = bytes(check.evaluated or b"")
    count = len(evaluated) // ELEMENT_SIZE
    seen: set[int] = set()
    for position, claim in enumerate(req.claims):
        if claim.index >= count or claim.index in seen:
            raise ClaimInvalid("one claim per element of the check", index=position)
        seen.add(claim.index)
    rows = session.execute(
        _ENTRIES_BY_TAG,
        {
            "key_seq": check.key_seq,
            "tags": sorted({bytes.fromhex(c.tag) for c in req.claims}),
            "statuses": list(matching_org_statuses(ctx.policy)),
            "today": now.date(),
        },
    ).all()
    by_tag: dict[bytes, list[tuple[str, bytes, bytes]]] = {}
    for entry_id, entry_tag, p_hat, sealed in rows:
        by_tag.setdefault(bytes(entry_tag), []).append((entry_id, bytes(p_hat), bytes(sealed)))
    answer: list[EntryOut] = []
    claimed: list[str] = []
    for position, claim in enumerate(req.claims):
        claim_tag = bytes.fromhex(claim.tag)
        entries = by_tag.get(claim_tag)
        if not entries:
            continue
        z = evaluated[claim.index * ELEMENT_SIZE : (claim.index + 1) * ELEMENT_SIZE]
        p = unwrap(ctx, entries[0][1])
        try:
            verify_claim(
                check_id=check.id,
                consent_id=check.consent_id,
                index=claim.index,
                tag=claim_tag,
                p=p,
                z=z,
                proof=bytes.fromhex(claim.proof),
            )
        except (VerifyError, DeserializeError, InvalidInputError):
            raise ClaimInvalid("the claim's proof does not verify", index=position) from None
        for entry_id, _p_hat, sealed in sorted(entries, key=lambda e: e[2]):
            answer.append(EntryOut(tag=claim.tag, sealed_handle=sealed.hex()))
            claimed.append(entry_id)
    known = set(
        session.scalars(
            select(CheckClaim.entry_id).where(
                CheckClaim.check_id == check.id, CheckClaim.entry_id.in_(claimed)
            )
        )
    )
    fresh = [e for e in dict.fromkeys(claimed) if e not in known]
    session.add_all(CheckClaim(check_id=check.id, entry_id=e) for e in fresh)
    if fresh:
        record(session, ctx, caller, "check.claimed", object_type="check", object_id=check.id)
    commit_for_key_work(session)  # the unwrapped entries' handles leave in the answer below
    return EntriesResponse(entries=answer)
