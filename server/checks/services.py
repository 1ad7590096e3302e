"""Running a check: consent, budget, quota and limits, then one blind evaluation and the content
of every requested bucket.

What the server does here is the same whether or not the applicant is registered: it never
unblinds anything and answers with whole buckets, so it cannot tell a match from a miss (the
k-anonymity of the bucket prefix is all it learns about the keys). The check is recorded (who,
when, which consent, how many keys), the keys and buckets are not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
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
from server.errors import PolicyViolation, QuotaExceeded
from server.oprf.services import blind_evaluate, decode_blinded, require_current_key
from server.policy.schema import NetworkPolicy
from server.registry.models import Organisation, OrgStatus
from server.registry.services import require_mou
from server.stats.services import Counter, increment_many


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
    rows = session.execute(
        select(Pseudonym.bucket, Pseudonym.tag, Pseudonym.sealed_handle)
        .join(Case, Case.id == Pseudonym.case_id)
        .join(Organisation, Organisation.id == Pseudonym.org_id)
        .where(
            Pseudonym.key_id == key_id,
            Pseudonym.bucket.in_(wanted),
            Case.status == CaseStatus.ACTIVE,
            Case.retention_until >= today,
            Organisation.status.in_(matching_org_statuses(policy)),
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


def seconds_to_next_utc_day(now: datetime) -> int:
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


def _enforce_quota(session: Session, ctx: AppContext, org_id: str, now: datetime) -> None:
    """Refuse when the organisation has used its checks for this UTC day.

    The organisation's row is locked first (PostgreSQL; SQLite has one writer anyway), so two
    concurrent checks cannot both see "one left" and both run.
    """
    session.execute(select(Organisation.id).where(Organisation.id == org_id).with_for_update())
    start = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    used = session.scalar(
        select(func.count()).select_from(Check).where(Check.org_id == org_id, Check.at >= start)
    )
    if (used or 0) >= ctx.policy.daily_check_quota:
        raise QuotaExceeded(
            f"the organisation's {ctx.policy.daily_check_quota} checks for today are used",
            retry_after_seconds=seconds_to_next_utc_day(now),
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
    """Run one check and commit; refusals store nothing and spend no budget."""
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
    buckets = bucket_contents(session, policy, req.key_id, req.buckets, today)
    # Everything so far only read. End that transaction before the key does its work (as long as
    # a good part of the check's database work): SQLite's database lock and, from
    # `_enforce_quota` on, PostgreSQL's lock on the organisation's row are then held for the
    # writes only, so concurrent checks evaluate in parallel instead of queueing behind each
    # other's multiplications. Budget and quota are decided after it, under the lock, by the
    # same conditional statements as before; a refusal there still writes nothing.
    session.commit()
    evaluated, proof = blind_evaluate(ctx, blinded)
    _enforce_quota(session, ctx, caller.org_id, now)
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
