"""The retention sweeper: deletes what the network agreed not to keep.

- a case past its retention date (the day after `retention_until`), with its pseudonyms;
- the cases of a withdrawn member, when the policy says `withdrawn_org_cases = "purge"`;
- any pseudonym still stored for a withdrawn case (withdrawal deletes them at once; this catches
  whatever an interrupted or older withdrawal left).

Each case is purged in its own transaction together with its audit entry (case id and reason,
nothing else) and its statistics, so a crash half-way leaves every case either untouched or
completely purged and recorded, and the next run simply continues. Each transaction re-checks
its condition on the locked row, so two sweepers running at once purge each case once.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import ColumnElement, and_, delete, exists, select
from sqlalchemy.orm import Session

from server.audit.chain import append
from server.cases.models import Case, CaseStatus, IdempotencyRecord, Pseudonym
from server.context import AppContext
from server.db import transaction
from server.registry.models import Organisation, OrgStatus
from server.stats.services import Counter, increment

REASON_RETENTION = "retention_expired"
REASON_ORG_WITHDRAWN = "org_withdrawn"
REASON_CASE_WITHDRAWN = "case_withdrawn"


@dataclass
class SweepReport:
    """How many cases were purged, by reason, and for how many withdrawn cases leftover
    pseudonyms were deleted. Counts only, so it can be printed and logged."""

    purged: Tally[str] = field(default_factory=Tally)
    withdrawn_cleaned: int = 0

    @property
    def total_purged(self) -> int:
        return sum(self.purged.values())


def _expired(today: date) -> ColumnElement[bool]:
    return Case.retention_until < today


def _of_withdrawn_org() -> ColumnElement[bool]:
    return exists().where(
        Organisation.id == Case.org_id, Organisation.status == OrgStatus.WITHDRAWN
    )


def _purge_one(
    session: Session, ctx: AppContext, case_id: str, condition: ColumnElement[bool], reason: str
) -> bool:
    case = session.scalars(
        select(Case).where(Case.id == case_id, condition).with_for_update()
    ).first()
    if case is None:  # purged by another sweeper, or no longer due (retention was extended)
        return False
    session.execute(delete(Pseudonym).where(Pseudonym.case_id == case.id))
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.case_id == case.id))
    org_id = case.org_id
    session.delete(case)
    append(
        session,
        at=ctx.now(),
        action="case.purge",
        object_type="case",
        object_id=case_id,
        details={"reason": reason},
    )
    increment(session, org_id, ctx.now(), Counter.CASES_PURGED)
    return True


def _purge_where(
    ctx: AppContext, condition: ColumnElement[bool], reason: str, report: SweepReport
) -> None:
    with transaction(ctx.sessions) as session:
        due = list(session.scalars(select(Case.id).where(condition).order_by(Case.id)))
    for case_id in due:
        with transaction(ctx.sessions) as session:
            if _purge_one(session, ctx, case_id, condition, reason):
                report.purged[reason] += 1


def _clean_withdrawn(ctx: AppContext, report: SweepReport) -> None:
    leftover = and_(
        Case.status == CaseStatus.WITHDRAWN,
        exists().where(Pseudonym.case_id == Case.id),
    )
    with transaction(ctx.sessions) as session:
        due = list(session.scalars(select(Case.id).where(leftover).order_by(Case.id)))
    for case_id in due:
        with transaction(ctx.sessions) as session:
            case = session.scalars(
                select(Case).where(Case.id == case_id, leftover).with_for_update()
            ).first()
            if case is None:
                continue
            session.execute(delete(Pseudonym).where(Pseudonym.case_id == case.id))
            case.pseudonym_count = 0
            append(
                session,
                at=ctx.now(),
                action="case.purge_pseudonyms",
                object_type="case",
                object_id=case_id,
                details={"reason": REASON_CASE_WITHDRAWN},
            )
            report.withdrawn_cleaned += 1


def run_sweep(ctx: AppContext) -> SweepReport:
    """One full sweep with the app clock's today; safe to run at any time and any number of
    times."""
    today = ctx.now().date()
    report = SweepReport()
    _purge_where(ctx, _expired(today), REASON_RETENTION, report)
    if ctx.policy.withdrawn_org_cases == "purge":
        _purge_where(ctx, _of_withdrawn_org(), REASON_ORG_WITHDRAWN, report)
    _clean_withdrawn(ctx, report)
    return report
