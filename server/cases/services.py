"""Registering, reading, re-dating and withdrawing cases.

Registration is one transaction: the case, all its entries, the idempotency record, the audit
entry, the statistics and (on a network that publishes at once) the filter revision commit
together or not at all, so a failure half-way stores nothing. Every refusal names the policy rule
it applied, so a focal point knows what to correct.

The keys arrive sealed to the registration key (docs/protocol.md, "Registration"): they are
opened, evaluated and padded in memory, and only `(entry_id, case_id, key_seq, P̂, tag,
sealed_handle)` is stored, exactly `keys_per_check` rows per case in random order. The focal
point never sees a `P`, so registering is no evaluation oracle.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol import sealed_keys
from protocol.codes import PADDING_KIND
from protocol.entry import (
    Handle,
    evaluate_inputs,
    pad_input,
    prove_evaluations,
    seal_handle,
    tag,
)
from protocol.errors import DeserializeError, InvalidInputError
from protocol.vocabulary import Category, Finding
from server.audit.models import AuditEntry
from server.audit.services import record
from server.auth.tokens import Caller
from server.cases.errors import IdempotencyConflict, SealedKeysInvalid
from server.cases.models import Case, CaseStatus, IdempotencyRecord, Pseudonym
from server.cases.schemas import (
    CaseCreate,
    CaseMetadata,
    CaseRekey,
    FilterValues,
    PadOut,
    case_out,
)
from server.context import AppContext
from server.db import commit_for_key_work, new_id
from server.errors import InvalidRequest, NotFound, PolicyViolation
from server.filter.services import publish_if_immediate
from server.oprf.services import current_key, evaluate, require_current_key, unwrap, wrap
from server.paging import OffsetPage, offset_page
from server.policy.schema import NetworkPolicy
from server.quotas.services import take_daily
from server.registry.models import Organisation
from server.registry.services import org_under_mou, require_mou
from server.stats.services import Counter, increment, increment_many

#: A registration withdrawn this soon is counted for the secretariat (docs/protocol.md,
#: "Threats": registering someone to learn whether they were registered already).
EARLY_WITHDRAWAL = timedelta(days=30)

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
    allowed_findings = {Finding.SUBSTANTIATED}
    if policy.allow_under_investigation:
        allowed_findings.add(Finding.UNDER_INVESTIGATION)
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


def request_sha256(req: CaseCreate) -> str:
    """The idempotency record keeps only this hash of the body: a retry sends the identical
    sealed keys (they are randomised, so any other body is another registration)."""
    canonical = json.dumps(req.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def metadata_of(req: CaseCreate) -> dict[str, Any]:
    """The case metadata as hashed into `sealed_keys`: every body field but the keys."""
    return req.model_dump(mode="json", exclude={"sealed_keys", "key_id"})


def open_keys(ctx: AppContext, req: CaseCreate) -> list[sealed_keys.RegisteredKey]:
    """The registration's keys, opened in memory and checked against its metadata."""
    return _open_sealed_keys(ctx, req.sealed_keys, metadata_of(req))


def _open_sealed_keys(
    ctx: AppContext, sealed_hex: str, metadata: dict[str, Any]
) -> list[sealed_keys.RegisteredKey]:
    """Open sealed keys in memory and check they belong to this metadata; one refusal for
    every cause, never echoing a byte of what was sealed."""
    try:
        plaintext = sealed_keys.open_sealed(
            ctx.keys.registration_private, bytes.fromhex(sealed_hex)
        )
        bound_to, keys = sealed_keys.decode(plaintext, ctx.policy.keys_per_check)
    except (DeserializeError, InvalidInputError) as exc:
        raise SealedKeysInvalid(
            f"sealed_keys does not open to {ctx.policy.keys_per_check} valid slots "
            "under the registration key"
        ) from exc
    if not secrets.compare_digest(bound_to, sealed_keys.metadata_sha256(metadata)):
        # Sealed for other metadata: replaying someone's sealed keys under a new case would
        # register their person with findings the sealer never stated.
        raise SealedKeysInvalid("sealed_keys was made for other case metadata")
    return keys


def _pad_indexes(ctx: AppContext, case_id: str, real: int) -> list[int]:
    return list(range(real, ctx.policy.keys_per_check))


def filter_values(
    ctx: AppContext, case_id: str, tags: list[bytes], pad_indexes: list[int]
) -> FilterValues:
    """The case's filter values and its pads' points with one DLEQ proof: the focal point
    checks the pads were derived, not planted, and keeps the values for `verify-live`."""
    secret = ctx.keys.oprf_secret
    inputs = [pad_input(case_id, i) for i in pad_indexes]
    points = evaluate_inputs(secret, inputs)
    proof = prove_evaluations(secret, inputs, points) if inputs else None
    return FilterValues(
        case_id=case_id,
        key_id=ctx.keys.oprf_key_id,
        key_seq=ctx.keys.oprf_key_seq,
        filter_values=sorted(int.from_bytes(t[:6], "big") for t in tags),
        pads=[PadOut(index=i, point=p.hex()) for i, p in zip(pad_indexes, points, strict=True)],
        pad_proof=None if proof is None else proof.hex(),
    )


def stored_filter_values(session: Session, ctx: AppContext, case_id: str) -> FilterValues:
    """The filter values of a stored case, as its registration answered them (for a replayed
    registration, or re-issued after a key rotation): the pads are recognised by deriving
    each possible one."""
    current_key(session, ctx)
    p_hats = [
        bytes(p)
        for p in session.scalars(
            select(Pseudonym.p_hat).where(
                Pseudonym.case_id == case_id, Pseudonym.key_seq == ctx.keys.oprf_key_seq
            )
        )
    ]
    tags = [tag(unwrap(ctx, p)) for p in p_hats]
    present = set(tags)
    candidates = list(range(ctx.policy.keys_per_check))
    points = evaluate_inputs(ctx.keys.oprf_secret, [pad_input(case_id, i) for i in candidates])
    pads = [i for i, point in zip(candidates, points, strict=True) if tag(point) in present]
    return filter_values(ctx, case_id, tags, pads)


@dataclass(frozen=True)
class Registration:
    case: Case
    created: bool
    filter_values: FilterValues
    #: The `seq` of the case's `case.register` log entry.
    log_seq: int | None


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


def _replay(session: Session, ctx: AppContext, case: Case) -> Registration:
    log_seq = session.scalar(
        select(AuditEntry.seq).where(
            AuditEntry.action == "case.register", AuditEntry.object_id == case.id
        )
    )
    return Registration(case, False, stored_filter_values(session, ctx, case.id), log_seq)


def store_entries(
    session: Session,
    ctx: AppContext,
    case: Case,
    org: Organisation,
    keys: list[sealed_keys.RegisteredKey],
) -> FilterValues:
    """Evaluate the case's keys, pad them to `keys_per_check` with proven pads, and store the
    entries in random order; answer the case's filter values and the pads' proof."""
    pads = _pad_indexes(ctx, case.id, len(keys))
    real_points = evaluate(ctx, [k.element for k in keys])
    pad_points = evaluate_inputs(ctx.keys.oprf_secret, [pad_input(case.id, i) for i in pads])
    labelled = [(p, k.kind, k.strength.value) for p, k in zip(real_points, keys, strict=True)]
    labelled += [(p, PADDING_KIND, "variant") for p in pad_points]
    # Random order: rows inserted in derivation order would tell strong keys from variants and
    # real entries from pads by their position.
    secrets.SystemRandom().shuffle(labelled)
    tags: list[bytes] = []
    for p, kind, strength in labelled:
        entry_id = new_id()
        handle = Handle(
            entry_id=entry_id,
            case_id=case.id,
            holder_org_id=org.id,
            holder_org_name=org.short_name,
            kind=kind,
            strength=strength,
        )
        entry_tag = tag(p)
        tags.append(entry_tag)
        session.add(
            Pseudonym(
                id=entry_id,
                case_id=case.id,
                key_seq=ctx.keys.oprf_key_seq,
                p_hat=wrap(ctx, p),
                tag=entry_tag,
                sealed_handle=seal_handle(p, handle),
            )
        )
    return filter_values(ctx, case.id, tags, pads)


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
            return _replay(session, ctx, replayed)

    org = org_under_mou(session, caller.org_id, "register", today)
    current_key(session, ctx, lock="share")
    require_current_key(ctx, req.key_id)
    policy = ctx.policy
    check_case_policy(policy, req, today)
    keys = open_keys(ctx, req)
    take_daily(session, policy, caller.org_id, now, elements=policy.keys_per_check)

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
        status=CaseStatus.ACTIVE,
        created_at=now,
    )
    session.add(case)
    session.flush()
    values = store_entries(session, ctx, case, org, keys)
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
    # The retention date lets a witness count live cases from the log alone (the filter must
    # hold keys_per_check values for each); it is case metadata, nothing about the person.
    logged = record(
        session,
        ctx,
        caller,
        "case.register",
        object_type="case",
        object_id=case.id,
        details={"retention_until": req.retention_until.isoformat()},
    )
    increment_many(
        session,
        caller.org_id,
        now,
        {Counter.CASES_REGISTERED: 1, Counter.REGISTRATION_EVALUATIONS: policy.keys_per_check},
    )
    session.flush()
    log_seq = logged.seq  # handed out at the flush; read before the commit expires it
    publish_if_immediate(session, ctx)
    try:
        # The filter values below are the key's work: committed before they leave.
        commit_for_key_work(session)
    except IntegrityError:
        # Two concurrent requests with one Idempotency-Key: the other one committed first.
        session.rollback()
        if idempotency_key is None:
            raise
        replayed = _replayed(session, caller.org_id, idempotency_key, digest)
        if replayed is None:
            raise
        return _replay(session, ctx, replayed)
    return Registration(case, True, values, log_seq)


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
    session.flush()
    return case


def withdraw_case(
    session: Session, ctx: AppContext, caller: Caller, case_id: str, reason: str, note: str | None
) -> Case:
    """Withdraw a case and delete its pseudonyms in the same transaction, so it stops matching
    the moment the answer is sent (after an upheld appeal, the person must not wait for a sweep).

    Withdrawing again changes nothing and answers with the case as it is: a retried request is
    safe. No MoU check: removing data must always be possible.
    `server.cascades.withdraw_case` closes the disclosure requests about it in the same
    transaction.
    """
    now = ctx.now()
    case = own_case(session, caller, case_id, lock=True)
    if case.status == CaseStatus.WITHDRAWN:
        return case
    session.execute(delete(Pseudonym).where(Pseudonym.case_id == case.id))
    case.status = CaseStatus.WITHDRAWN
    case.withdrawn_at = now
    case.withdrawal_reason = reason
    case.withdrawal_note = note
    record(
        session,
        ctx,
        caller,
        "case.withdraw",
        object_type="case",
        object_id=case.id,
        details={"reason": reason},
    )
    increment(session, caller.org_id, now, Counter.CASES_WITHDRAWN)
    if now - case.created_at <= EARLY_WITHDRAWAL:
        increment(session, caller.org_id, now, Counter.CASES_WITHDRAWN_WITHIN_30_DAYS)
    session.flush()
    publish_if_immediate(session, ctx)
    return case


def case_metadata(case: Case) -> dict[str, Any]:
    """The case's metadata as a re-keying focal point hashes it into `sealed_keys` (as
    `GET /v1/cases/{id}` shows it now: a shortened retention date is the current one)."""
    shown = case_out(case).model_dump(mode="json", include=set(CaseMetadata.model_fields))
    return CaseMetadata.model_validate(shown).model_dump(mode="json")


def rekey_case(
    session: Session, ctx: AppContext, caller: Caller, case_id: str, req: CaseRekey
) -> FilterValues:
    """Swap a live case's entries for keys derived again by its focal point (identity tables
    changed, new key forms), in one transaction, audited, and commit.

    Only the holder's focal point can do this, from the records it holds: the server never had
    the identifiers. The keys are sealed and bound to the case's current metadata as at
    registration, and count against the same daily evaluation quota.
    """
    now = ctx.now()
    today = now.date()
    case = own_case(session, caller, case_id, lock=True)
    if case.status != CaseStatus.ACTIVE:
        raise NotFound("no such live case")
    org = org_under_mou(session, caller.org_id, "register", today)
    current_key(session, ctx, lock="share")
    require_current_key(ctx, req.key_id)
    keys = _open_sealed_keys(ctx, req.sealed_keys, case_metadata(case))
    take_daily(session, ctx.policy, caller.org_id, now, elements=ctx.policy.keys_per_check)
    session.execute(delete(Pseudonym).where(Pseudonym.case_id == case.id))
    values = store_entries(session, ctx, case, org, keys)
    record(session, ctx, caller, "case.rekey", object_type="case", object_id=case.id)
    increment(
        session, caller.org_id, now, Counter.REGISTRATION_EVALUATIONS, ctx.policy.keys_per_check
    )
    session.flush()
    publish_if_immediate(session, ctx)
    commit_for_key_work(session)  # the new filter values leave in the answer
    return values
