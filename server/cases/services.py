"""Registering, reading, re-dating and withdrawing cases.

Registration is one transaction: the case, all its pseudonyms, the idempotency record, the audit
entry and the statistics commit together or not at all, so a failure half-way stores nothing.
Every refusal names the policy rule it applied, so a focal point knows what to correct.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol.pseudonym import Handle, seal_handle, tag
from server.audit.services import record
from server.auth.tokens import Caller
from server.cases.errors import IdempotencyConflict
from server.cases.models import Case, CaseStatus, IdempotencyRecord, Pseudonym
from server.cases.schemas import CaseCreate
from server.context import AppContext
from server.db import new_id
from server.disclosures.services import close_for_case
from server.errors import InvalidRequest, NotFound, PolicyViolation
from server.oprf.errors import InvalidElement
from server.oprf.services import decode_element, require_current_key
from server.paging import OffsetPage, offset_page
from server.policy.schema import Category, NetworkPolicy
from server.registry.services import require_mou
from server.stats.services import Counter, increment

FINDING_SUBSTANTIATED = "substantiated"
FINDING_UNDER_INVESTIGATION = "under_investigation"

# Visible ASCII only: the key is echoed nowhere, but it is stored and compared.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")


def add_years(day: date, years: int) -> date:
    """`day` moved by whole years; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def max_retention_until(
    policy: NetworkPolicy, category: str, child_victim: bool, found: date
) -> date:
    return add_years(found, policy.max_retention_years(Category(category), child_victim))


def check_retention(
    policy: NetworkPolicy,
    case_category: str,
    child_victim: bool,
    found: date,
    until: date,
    today: date,
) -> None:
    """The retention date must lie between today and the policy's maximum for the category."""
    limit = max_retention_until(policy, case_category, child_victim, found)
    if until > limit:
        raise PolicyViolation(
            f"retention_until may be at most {limit.isoformat()} for this category "
            "(policy maximum counted from the finding date)",
            rule="retention",
            max_retention_until=limit.isoformat(),
        )
    if until < today:
        raise PolicyViolation("retention_until is in the past", rule="retention")


def check_case_policy(policy: NetworkPolicy, req: CaseCreate, today: date) -> None:
    """Refuse what the network policy does not allow, naming the rule."""
    if req.category not in policy.categories:
        raise PolicyViolation("the category is not one the policy knows", rule="category")
    allowed_findings = {FINDING_SUBSTANTIATED}
    if policy.allow_under_investigation:
        allowed_findings.add(FINDING_UNDER_INVESTIGATION)
    if req.finding not in allowed_findings:
        raise PolicyViolation(
            f"only these findings may be registered: {', '.join(sorted(allowed_findings))}",
            rule="finding",
        )
    if req.sanction not in policy.sanctions:
        raise PolicyViolation("the sanction is not one the policy allows", rule="sanction")
    if req.legal_basis not in policy.allowed_legal_bases:
        raise PolicyViolation("the legal basis is not one the policy allows", rule="legal_basis")
    if req.finding_date > today:
        raise InvalidRequest("finding_date is in the future")
    if not req.finding_date <= req.subject_notified_on <= today:
        raise InvalidRequest("subject_notified_on must lie between the finding date and today")
    check_retention(
        policy, req.category, req.child_victim, req.finding_date, req.retention_until, today
    )
    if len(req.pseudonyms) > policy.max_keys_per_check:
        # More keys than a check may carry could never all be checked against.
        raise PolicyViolation(
            f"a case may have at most {policy.max_keys_per_check} pseudonyms",
            rule="keys_per_case",
        )
    bucket_limit = 1 << policy.bucket_bits
    for index, pseudonym in enumerate(req.pseudonyms):
        if pseudonym.bucket >= bucket_limit:
            raise PolicyViolation(
                f"buckets have {policy.bucket_bits} bits in this network",
                rule="bucket_bits",
                index=index,
            )


def request_sha256(req: CaseCreate) -> str:
    canonical = json.dumps(req.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Registration:
    case: Case
    created: bool


def _replayed(session: Session, org_id: str, key: str, digest: str) -> Case | None:
    existing = session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.org_id == org_id, IdempotencyRecord.key == key
        )
    ).first()
    if existing is None:
        return None
    if existing.request_sha256 != digest:
        raise IdempotencyConflict("this Idempotency-Key was used for a different request")
    case = session.get(Case, existing.case_id)
    assert case is not None  # the record is deleted with its case (ON DELETE CASCADE)
    return case


def register_case(
    session: Session,
    ctx: AppContext,
    caller: Caller,
    req: CaseCreate,
    *,
    idempotency_key: str | None = None,
) -> Registration:
    """Register a case and commit. A repeated `idempotency_key` with the same body answers with
    the case it created (whatever happened to it since), without registering anything."""
    now = ctx.now()
    today = now.date()
    digest = request_sha256(req)
    if idempotency_key is not None:
        if _IDEMPOTENCY_KEY.fullmatch(idempotency_key) is None:
            raise InvalidRequest("Idempotency-Key must be 1 to 128 visible ASCII characters")
        replayed = _replayed(session, caller.org_id, idempotency_key, digest)
        if replayed is not None:
            return Registration(replayed, created=False)

    org = require_mou(session, caller.org_id, "register", today)
    require_current_key(ctx, req.key_id)
    check_case_policy(ctx.policy, req, today)
    elements: list[bytes] = []
    seen: set[bytes] = set()
    for index, pseudonym in enumerate(req.pseudonyms):
        element = decode_element(pseudonym.element, index=index)
        if element in seen:
            raise InvalidElement("the element repeats an earlier one of this case", index=index)
        seen.add(element)
        elements.append(element)

    case = Case(
        id=new_id(),
        org_id=caller.org_id,
        registered_by=caller.principal_id,
        category=req.category,
        child_victim=req.child_victim,
        finding=req.finding,
        sanction=req.sanction,
        finding_date=req.finding_date,
        legal_basis=req.legal_basis,
        retention_until=req.retention_until,
        mou_reference=req.mou_reference,
        subject_notified_on=req.subject_notified_on,
        key_id=req.key_id,
        status=CaseStatus.ACTIVE,
        pseudonym_count=len(elements),
        created_at=now,
    )
    session.add(case)
    for pseudonym, element in zip(req.pseudonyms, elements, strict=True):
        entry_id = new_id()
        handle = Handle(
            entry_id=entry_id,
            case_id=case.id,
            holder_org_id=org.id,
            holder_org_name=org.short_name,
            kind=pseudonym.kind,
            strength=pseudonym.strength,
        )
        session.add(
            Pseudonym(
                id=entry_id,
                case_id=case.id,
                org_id=org.id,
                key_id=req.key_id,
                kind=pseudonym.kind,
                strength=pseudonym.strength,
                bucket=pseudonym.bucket,
                element=element,
                tag=tag(element),
                sealed_handle=seal_handle(element, handle),
            )
        )
    if idempotency_key is not None:
        session.add(
            IdempotencyRecord(
                org_id=caller.org_id,
                key=idempotency_key,
                request_sha256=digest,
                case_id=case.id,
                created_at=now,
            )
        )
    record(
        session,
        ctx,
        caller,
        "case.register",
        object_type="case",
        object_id=case.id,
        details={"pseudonyms": len(elements)},
    )
    increment(session, caller.org_id, now, Counter.CASES_REGISTERED)
    try:
        session.commit()
    except IntegrityError:
        # Two concurrent requests with one Idempotency-Key: the other one committed first.
        session.rollback()
        if idempotency_key is None:
            raise
        replayed = _replayed(session, caller.org_id, idempotency_key, digest)
        if replayed is None:
            raise
        return Registration(replayed, created=False)
    return Registration(case, created=True)


def own_case(session: Session, caller: Caller, case_id: str, *, lock: bool = False) -> Case:
    """A case of the caller's organisation; any other id answers exactly like a missing one."""
    stmt = select(Case).where(Case.id == case_id, Case.org_id == caller.org_id)
    if lock:
        stmt = stmt.with_for_update()
    case = session.scalars(stmt).first()
    if case is None:
        raise NotFound("no such case")
    return case


def list_cases(
    session: Session, caller: Caller, status: str | None, *, limit: int, offset: int
) -> OffsetPage[Case]:
    """The organisation's cases, newest first, one page at a time: a member with thousands of
    cases must not make one request read (and the server hold) all of them."""
    stmt = select(Case).where(Case.org_id == caller.org_id)
    if status is not None:
        stmt = stmt.where(Case.status == status)
    stmt = stmt.order_by(Case.created_at.desc(), Case.id)
    return offset_page(session, stmt, limit=limit, offset=offset)


def change_retention(
    session: Session, ctx: AppContext, caller: Caller, case_id: str, until: date
) -> Case:
    """Move a case's retention date within the policy. Shortening is always allowed (less data
    kept); keeping data longer needs the MoU in force, like registering it did."""
    today = ctx.now().date()
    case = own_case(session, caller, case_id, lock=True)
    if until == case.retention_until:
        return case
    check_retention(ctx.policy, case.category, case.child_victim, case.finding_date, until, today)
    if until > case.retention_until:
        require_mou(session, caller.org_id, "register", today)
    case.retention_until = until
    record(
        session,
        ctx,
        caller,
        "case.retention_change",
        object_type="case",
        object_id=case.id,
        details={"retention_until": until.isoformat()},
    )
    session.commit()
    return case


def withdraw_case(
    session: Session, ctx: AppContext, caller: Caller, case_id: str, reason: str, note: str | None
) -> Case:
    """Withdraw a case and delete its pseudonyms in the same transaction, so it stops matching
    the moment the answer is sent (after an upheld appeal, the person must not wait for a sweep).

    Withdrawing again changes nothing and answers with the case as it is: a retried request is
    safe. No MoU check: removing data must always be possible.
    """
    now = ctx.now()
    case = own_case(session, caller, case_id, lock=True)
    if case.status == CaseStatus.WITHDRAWN:
        return case
    # A DML statement always yields a CursorResult, which carries the row count.
    result = cast(
        CursorResult[Any], session.execute(delete(Pseudonym).where(Pseudonym.case_id == case.id))
    )
    deleted = result.rowcount
    case.status = CaseStatus.WITHDRAWN
    case.withdrawn_at = now
    case.withdrawal_reason = reason
    case.withdrawal_note = note
    case.pseudonym_count = 0
    record(
        session,
        ctx,
        caller,
        "case.withdraw",
        object_type="case",
        object_id=case.id,
        details={"reason": reason, "pseudonyms_deleted": deleted},
    )
    # Open disclosure requests about it close in this transaction, unread answers deleted.
    close_for_case(session, ctx, caller, case.id, "record_withdrawn")
    increment(session, caller.org_id, now, Counter.CASES_WITHDRAWN)
    session.commit()
    return case
