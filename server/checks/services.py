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
from datetime import date
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from protocol.messages import CheckRequest
from server.audit.services import record, refusal_details
from server.auth.tokens import Caller
from server.cases.models import Case, CaseStatus, Pseudonym
from server.checks.answer import CheckAnswer
from server.checks.models import Check
from server.consents.errors import ConsentExhausted
from server.consents.models import Consent
from server.consents.services import ensure_usable, own_consent
from server.context import AppContext
from server.db import new_id
from server.errors import DomainError, PolicyViolation
from server.oprf.services import blind_evaluate, decode_elements, require_current_key
from server.policy.schema import NetworkPolicy
from server.quotas.services import take_daily
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


_pseudonyms = Pseudonym.__table__.c
_cases = Case.__table__.c
_orgs = Organisation.__table__.c
_consent_table = cast(Table, Consent.__table__)
_consents = _consent_table.c

# The check path's statements, built once with bound parameters, so SQLAlchemy compiles each once
# per process (building a statement per call cost more than running it). Core, not the ORM: no
# identity map or unit of work for rows that are only read once or only written.
_BUCKET_ENTRIES = (
    select(_pseudonyms.bucket, _pseudonyms.tag, _pseudonyms.sealed_handle)
    .join(Case.__table__, _cases.id == _pseudonyms.case_id)
    .where(
        _pseudonyms.key_id == bindparam("key_id"),
        _pseudonyms.bucket.in_(bindparam("buckets", expanding=True)),
        # The holders' status as an IN over a subquery, not a join: joined, SQLite drives the
        # query from the (small) organisations table and reads every requested bucket once per
        # member; this way it reads each once, through ix_pseudonyms_key_id_bucket. PostgreSQL's
        # planner may still do so while the network has a handful of members (EXPLAIN and what
        # was tried: loadtests/README.md, "Left for later").
        _pseudonyms.org_id.in_(
            select(_orgs.id).where(_orgs.status.in_(bindparam("statuses", expanding=True)))
        ),
        _cases.status == CaseStatus.ACTIVE,
        _cases.retention_until >= bindparam("today"),
    )
)
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
_INSERT_CHECK = insert(cast(Table, Check.__table__))


def bucket_contents(
    session: Session, policy: NetworkPolicy, key_id: str, buckets: Sequence[int], today: date
) -> dict[int, list[tuple[bytes, bytes]]]:
    """Every live entry `(tag, sealed_handle)` of each of the distinct `buckets`, sorted.

    Cases past their retention date are left out even before the sweeper deletes them, so a late
    sweep never extends how long a finding can match.
    """
    wanted = sorted(set(buckets))
    rows = session.execute(
        _BUCKET_ENTRIES,
        {
            "key_id": key_id,
            "buckets": wanted,
            "statuses": list(matching_org_statuses(policy)),
            "today": today,
        },
    ).all()
    grouped: dict[int, list[tuple[bytes, bytes]]] = {b: [] for b in wanted}
    for bucket, tag, sealed in rows:
        grouped[bucket].append((bytes(tag), bytes(sealed)))
    for entries in grouped.values():
        entries.sort()
    return grouped


def _spend_one_check(session: Session, consent: Consent, today: date) -> None:
    """Take one check from the consent's budget in one conditional UPDATE, so concurrent checks
    under one consent cannot overspend it (a read-then-write would let both pass)."""
    result = cast(
        CursorResult[Any],
        session.execute(_SPEND_ONE_CHECK, {"consent_id": consent.id, "today": today}),
    )
    if result.rowcount != 1:
        session.refresh(consent)
        ensure_usable(consent, today)
        raise ConsentExhausted("all checks of this consent were used")


def run_check(session: Session, ctx: AppContext, caller: Caller, req: CheckRequest) -> CheckAnswer:
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
        details = refusal_details(
            refusal, keys=len(req.blinded_elements), buckets=len(set(req.buckets))
        )
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


def _run_check(session: Session, ctx: AppContext, caller: Caller, req: CheckRequest) -> CheckAnswer:
    """The controls and the record of the check in one transaction, then the evaluation.

    Everything the database decides (MoU, consent, buckets, quota, budget, the check row, its
    audit entry and counters) commits before the key does any work: no lock (SQLite's database
    lock, PostgreSQL's row locks on the day's usage, the consent and the audit head) is held
    while it multiplies, and a suspension or withdrawal that commits first is always seen. The
    evaluation of elements already decoded cannot fail; if the process died between the commit
    and the answer, the check stays recorded and its unit of budget spent, as for an answer lost
    on the way back.
    """
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
    # Every element is checked here, before anything is spent or recorded: the evaluation that
    # would otherwise refuse a bad one runs after the commit.
    blinded = decode_elements(req.blinded_elements)
    # Reads before writes: on PostgreSQL the day's usage row stays locked from `take_daily` to
    # the commit, and the organisation's other checks wait for it.
    buckets = bucket_contents(session, policy, req.key_id, req.buckets, today)
    take_daily(session, policy, caller.org_id, now, checks=1)
    _spend_one_check(session, consent, today)
    check_id = new_id()
    session.execute(
        _INSERT_CHECK,
        {
            "id": check_id,
            "org_id": caller.org_id,
            "consent_id": consent.id,
            "principal_id": caller.principal_id,
            "at": now,
            "key_count": len(blinded),
        },
    )
    increment_many(
        session,
        caller.org_id,
        now,
        {Counter.CHECKS_RUN: 1, Counter.KEYS_CHECKED: len(blinded)},
    )
    # Last: from here to the commit every writer in the network waits for the audit head.
    record(
        session,
        ctx,
        caller,
        "check.run",
        object_type="consent",
        object_id=consent.id,
        details={"keys": len(blinded), "buckets": len(buckets)},
    )
    session.commit()
    evaluated, proof = blind_evaluate(ctx, blinded)
    return CheckAnswer(
        check_id=check_id,
        key_id=req.key_id,
        evaluated_elements=evaluated,
        proof=proof,
        buckets=buckets,
    )
