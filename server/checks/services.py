"""Running a check: consent, budget, quota and limits, then one blind evaluation and the content
of every requested bucket.

What the server does here is the same whether or not the applicant is registered: it never
unblinds anything and answers with whole buckets, so it cannot tell a match from a miss (the
k-anonymity of the bucket prefix is all it learns about the keys). The check is recorded (who,
when, which consent, how many keys), the keys and buckets are not. A refused check is recorded
too (`check.refused`: why, and how many keys), because refusals are where fishing shows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from protocol.messages import BucketEntries, BucketEntry, CheckRequest, CheckResponse
from server.audit.services import record
from server.auth.tokens import Caller
from server.cases.models import Case, CaseStatus, Pseudonym
from server.checks.models import Check
from server.consents.errors import ConsentExhausted
from server.consents.models import Consent
from server.consents.services import ensure_usable, own_consent
from server.context import AppContext
from server.db import new_id
from server.errors import DomainError, PolicyViolation
from server.oprf.services import blind_evaluate, decode_blinded, require_current_key
from server.policy.schema import NetworkPolicy
from server.quotas import enforce_daily_quota, lock_organisation, start_of_utc_day
from server.registry.models import Organisation, OrgStatus
from server.registry.services import require_mou
from server.stats.services import Counter, increment, increment_many

log = logging.getLogger("refcheck.server.checks")


def matching_org_statuses(policy: NetworkPolicy) -> tuple[str, ...]:
    """Holder statuses whose cases are answered. A suspended member's cases stay stored but do
    not match; a withdrawn member's match until purged only if the policy keeps them."""
    if policy.withdrawn_org_cases == "keep_until_retention":
        return (OrgStatus.ACTIVE, OrgStatus.WITHDRAWN)
    return (OrgStatus.ACTIVE,)


def bucket_contents(
    session: Session, policy: NetworkPolicy, key_id: str, buckets: Sequence[int], today: date
) -> list[BucketEntries]:
    """Every live entry of the distinct `buckets`, ascending, entries sorted by tag.

    Cases past their retention date are left out even before the sweeper deletes them, so a late
    sweep never extends how long a finding can match.
    """
    wanted = sorted(set(buckets))
    # The holders' status as an IN over a subquery, not a join: joined, SQLite drives the query
    # from the (small) organisations table and reads every requested bucket once per member;
    # this way both backends read each bucket once, through ix_pseudonyms_key_id_bucket.
    matching_orgs = select(Organisation.id).where(
        Organisation.status.in_(matching_org_statuses(policy))
    )
    rows = session.execute(
        select(Pseudonym.bucket, Pseudonym.tag, Pseudonym.sealed_handle)
        .join(Case, Case.id == Pseudonym.case_id)
        .where(
            Pseudonym.key_id == key_id,
            Pseudonym.bucket.in_(wanted),
            Pseudonym.org_id.in_(matching_orgs),
            Case.status == CaseStatus.ACTIVE,
            Case.retention_until >= today,
        )
    ).all()
    grouped: dict[int, list[tuple[bytes, bytes]]] = {b: [] for b in wanted}
    for bucket, tag, sealed in rows:
        grouped[bucket].append((bytes(tag), bytes(sealed)))
    # `model_construct`: the tags and sealed handles are the server's own (it computed and sealed
    # them at registration), so validating each entry's hex again would only cost time, about a
    # quarter of what an entry costs, and a bucket answer at scale has thousands of entries.
    return [
        BucketEntries.model_construct(
            bucket=b,
            entries=[
                BucketEntry.model_construct(tag=t.hex(), sealed_handle=s.hex())
                for t, s in sorted(grouped[b])
            ],
        )
        for b in wanted
    ]


def checks_run_today(session: Session, org_id: str, now: datetime) -> int:
    """Checks the organisation ran since the start of `now`'s UTC day. Refused checks are not
    `Check` rows, so they never count: the quota bounds what was served."""
    used = session.scalar(
        select(func.count())
        .select_from(Check)
        .where(Check.org_id == org_id, Check.at >= start_of_utc_day(now))
    )
    return int(used or 0)


def _enforce_quota(
    session: Session, ctx: AppContext, org_id: str, now: datetime, *, lock: bool
) -> None:
    """Refuse when the organisation has used its checks for this UTC day.

    With `lock`, the organisation's row is locked first (PostgreSQL; SQLite has one writer
    anyway), so two concurrent checks cannot both see "one left" and both run; that is the
    decision that counts. Without it, a cheap early look that spares the key's work for calls
    over the quota (`server.quotas`).
    """
    if lock:
        lock_organisation(session, org_id)
    enforce_daily_quota(
        used=checks_run_today(session, org_id, now),
        adding=1,
        quota=ctx.policy.daily_check_quota,
        now=now,
        what="checks",
    )


def _spend_one_check(session: Session, consent: Consent, today: date) -> None:
    """Take one check from the consent's budget in one conditional UPDATE, so concurrent checks
    under one consent cannot overspend it (a read-then-write would let both pass)."""
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Consent)
            .where(
                Consent.id == consent.id,
                Consent.checks_used < Consent.max_checks,
                Consent.withdrawn_at.is_(None),
                Consent.expires_on >= today,
            )
            .values(checks_used=Consent.checks_used + 1)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        session.refresh(consent)
        ensure_usable(consent, today)
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
    of its own after the refused one is rolled back.

    Refusals are what fishing looks like (an expired or foreign consent tried, a quota hit, too
    many keys), so the network admin must see them although nothing was done. Recorded: the
    problem slug, the policy rule if any, and counts; the consent only as the id of one of the
    caller's own consents. Never the elements, the buckets, or anything the consent says about
    the applicant. Whatever happens here, the caller gets the original refusal: a failure to
    record is logged (by class name only) and rolled back.
    """
    session.rollback()
    try:
        consent_id = session.scalar(
            select(Consent.id).where(Consent.id == req.consent_id, Consent.org_id == caller.org_id)
        )
        details: dict[str, Any] = {
            "problem": refusal.slug,
            "keys": len(req.blinded_elements),
            "buckets": len(set(req.buckets)),
        }
        rule = refusal.extra.get("rule")
        if isinstance(rule, str):
            details["rule"] = rule
        record(
            session,
            ctx,
            caller,
            "check.refused",
            object_type="consent" if consent_id is not None else None,
            object_id=consent_id,
            details=details,
        )
        increment(session, caller.org_id, ctx.now(), Counter.CHECKS_REFUSED)
        session.commit()
    except Exception as exc:  # noqa: BLE001 - the refusal, not this failure, is the answer
        session.rollback()
        log.error("could not record a refused check: %s", type(exc).__name__)


def _run_check(
    session: Session, ctx: AppContext, caller: Caller, req: CheckRequest
) -> CheckResponse:
    now = ctx.now()
    today = now.date()
    require_mou(session, caller.org_id, "check", today)
    consent = own_consent(session, caller, req.consent_id)
    ensure_usable(consent, today)
    require_current_key(ctx, req.key_id)
    policy = ctx.policy
    if len(req.blinded_elements) > policy.max_keys_per_check:
        raise PolicyViolation(
            f"a check may carry at most {policy.max_keys_per_check} keys", rule="keys_per_check"
        )
    bucket_limit = 1 << policy.bucket_bits
    for index, bucket in enumerate(req.buckets):
        if bucket >= bucket_limit:
            raise PolicyViolation(
                f"buckets have {policy.bucket_bits} bits in this network",
                rule="bucket_bits",
                index=index,
            )
    blinded = decode_blinded(req.blinded_elements)
    _enforce_quota(session, ctx, caller.org_id, now, lock=False)
    buckets = bucket_contents(session, policy, req.key_id, req.buckets, today)
    # Everything so far only read. End that transaction before the key does its work (as long as
    # a good part of the check's database work): SQLite's database lock and, from
    # `_enforce_quota` on, PostgreSQL's lock on the organisation's row are then held for the
    # writes only, so concurrent checks evaluate in parallel instead of queueing behind each
    # other's multiplications. Budget and quota are decided after it, under the lock, by the
    # same conditional statements as before; a refusal there still writes nothing.
    session.commit()
    evaluated, proof = blind_evaluate(ctx, blinded)
    _enforce_quota(session, ctx, caller.org_id, now, lock=True)
    _spend_one_check(session, consent, today)
    check = Check(
        id=new_id(),
        org_id=caller.org_id,
        consent_id=consent.id,
        principal_id=caller.principal_id,
        at=now,
        key_count=len(blinded),
    )
    session.add(check)
    record(
        session,
        ctx,
        caller,
        "check.run",
        object_type="consent",
        object_id=consent.id,
        details={"keys": len(blinded), "buckets": len(buckets)},
    )
    increment_many(
        session,
        caller.org_id,
        now,
        {Counter.CHECKS_RUN: 1, Counter.KEYS_CHECKED: len(blinded)},
    )
    session.commit()
    return CheckResponse(
        check_id=check.id,
        key_id=req.key_id,
        evaluated_elements=[e.hex() for e in evaluated],
        proof=proof.hex(),
        buckets=buckets,
    )
