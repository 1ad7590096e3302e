"""The retention sweeper: deletes what the network agreed not to keep.

- a case past its retention date (the day after `retention_until`), with its pseudonyms;
- the cases of a withdrawn member, when the policy says `withdrawn_org_cases = "purge"`;
- any pseudonym still stored for a withdrawn case (withdrawal deletes them at once; this catches
  whatever an interrupted or older withdrawal left);
- the metadata of a disclosure request that ended (closed, withdrawn, expired) more than the
  policy's `disclosure_record_retention_days` ago. The yearly figures are counters and stay;
- the daily-quota usage rows of days before yesterday (`server.quotas.services`).

A sweep is one transaction: each row goes together with its audit entry (its id and the reason,
nothing else) and its statistics, and a crash half-way rolls the whole sweep back, so the next
run simply does it again; nothing is ever deleted without its record. Each purge re-checks its
condition on the locked row, so two sweepers running at once purge each row once (the second
waits for the first's row locks, then finds nothing left to do).
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, delete, exists, select, update
from sqlalchemy.orm import Session

from server.audit.chain import append
from server.cases.models import Case, CaseStatus, IdempotencyRecord, Pseudonym
from server.checks.models import Check
from server.context import AppContext
from server.db import transaction
from server.disclosures.models import ENDED, DisclosureRequest
from server.disclosures.services import close_for_case
from server.filter.services import publish_if_immediate
from server.quotas.services import prune_daily_usage
from server.registry.models import Organisation, OrgStatus
from server.stats.services import Counter, increment

log = logging.getLogger("refcheck.server.retention")

REASON_RETENTION = "retention_expired"
REASON_ORG_WITHDRAWN = "org_withdrawn"
REASON_CASE_WITHDRAWN = "case_withdrawn"


@dataclass
class SweepReport:
    """How many cases were purged, by reason, for how many withdrawn cases leftover pseudonyms
    were deleted, and how many ended disclosure requests were deleted. Counts only, so it can be
    printed and logged."""

    purged: Tally[str] = field(default_factory=Tally)
    withdrawn_cleaned: int = 0
    disclosure_requests_purged: int = 0
    daily_usage_pruned: int = 0
    evaluations_cleared: int = 0

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
    # Re-checked on the locked row: another sweeper may have purged it, or a focal point may
    # have extended its retention, since the candidates were listed.
    case = session.scalars(
        select(Case).where(Case.id == case_id, condition).with_for_update()
    ).first()
    if case is None:
        return False
    session.execute(delete(Pseudonym).where(Pseudonym.case_id == case.id))
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.case_id == case.id))
    # Open disclosure requests about it close first (their rows outlive the case).
    close_for_case(session, ctx, None, case.id, "record_purged")
    org_id = case.org_id
    session.delete(case)
    session.flush()
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
    session: Session,
    ctx: AppContext,
    condition: ColumnElement[bool],
    reason: str,
    report: SweepReport,
) -> None:
    due = list(session.scalars(select(Case.id).where(condition).order_by(Case.id)))
    for case_id in due:
        if _purge_one(session, ctx, case_id, condition, reason):
            report.purged[reason] += 1


def _clean_withdrawn(session: Session, ctx: AppContext, report: SweepReport) -> None:
    leftover = and_(
        Case.status == CaseStatus.WITHDRAWN,
        exists().where(Pseudonym.case_id == Case.id),
    )
    due = list(session.scalars(select(Case.id).where(leftover).order_by(Case.id)))
    for case_id in due:
        case = session.scalars(
            select(Case).where(Case.id == case_id, leftover).with_for_update()
        ).first()
        if case is None:
            continue
        session.execute(delete(Pseudonym).where(Pseudonym.case_id == case.id))
        append(
            session,
            at=ctx.now(),
            action="case.purge_pseudonyms",
            object_type="case",
            object_id=case_id,
            details={"reason": REASON_CASE_WITHDRAWN},
        )
        report.withdrawn_cleaned += 1


def _ended_before(cutoff: datetime) -> ColumnElement[bool]:
    return and_(DisclosureRequest.state.in_(ENDED), DisclosureRequest.closed_at < cutoff)


def _purge_disclosure_records(session: Session, ctx: AppContext, report: SweepReport) -> None:
    """Delete disclosure requests that ended more than the policy's retention days ago.

    Runs after the case purges, which close the open requests about purged cases (those then
    wait their own retention days). An ended request holds no ciphertext any more (deleted when
    it ended); what goes is who asked whom, when, and the state.
    """
    now = ctx.now()
    condition = _ended_before(now - timedelta(days=ctx.policy.disclosure_record_retention_days))
    due = list(
        session.scalars(
            select(DisclosureRequest.id).where(condition).order_by(DisclosureRequest.id)
        )
    )
    for request_id in due:
        req = session.scalars(
            select(DisclosureRequest)
            .where(DisclosureRequest.id == request_id, condition)
            .with_for_update()
        ).first()
        if req is None:
            continue
        session.delete(req)
        session.flush()
        append(
            session,
            at=now,
            action="disclosure.purge",
            object_type="disclosure_request",
            object_id=request_id,
            details={"reason": REASON_RETENTION},
        )
        report.disclosure_requests_purged += 1


def clear_expired_evaluations(session: Session, ctx: AppContext) -> int:
    """Clear the `Z_i` of checks past their entry window: after it no claim can be made for
    them, and nothing derived from an applicant's keys remains."""
    cutoff = ctx.now() - timedelta(seconds=ctx.policy.entry_fetch_window_seconds)
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Check)
            .where(Check.evaluated.is_not(None), Check.at < cutoff)
            .values(evaluated=None)
        ),
    )
    return result.rowcount


def sweep(session: Session, ctx: AppContext) -> SweepReport:
    """One full sweep with the app clock's today, in the caller's transaction (not committed
    here: the periodic job runner and `run_sweep` commit). Safe to run at any time and any
    number of times: it only ever deletes what is due and records each deletion once."""
    today = ctx.now().date()
    report = SweepReport()
    _purge_where(session, ctx, _expired(today), REASON_RETENTION, report)
    if ctx.policy.withdrawn_org_cases == "purge":
        _purge_where(session, ctx, _of_withdrawn_org(), REASON_ORG_WITHDRAWN, report)
    _clean_withdrawn(session, ctx, report)
    _purge_disclosure_records(session, ctx, report)
    report.daily_usage_pruned = prune_daily_usage(session, ctx.now())
    report.evaluations_cleared = clear_expired_evaluations(session, ctx)
    if report.total_purged or report.withdrawn_cleaned:
        session.flush()
        publish_if_immediate(session, ctx)
    if report.total_purged or report.withdrawn_cleaned or report.disclosure_requests_purged:
        # Counts only: the audit trail holds which rows, and nothing here may name a person.
        log.info(
            "retention sweep: %d case(s) purged %s, %d withdrawn case(s) cleaned, "
            "%d disclosure request(s) purged",
            report.total_purged,
            dict(report.purged),
            report.withdrawn_cleaned,
            report.disclosure_requests_purged,
        )
    return report


def sweep_job(session: Session, ctx: AppContext) -> None:
    """`server.jobs` entry point (the runner commits and logs failures)."""
    sweep(session, ctx)


def run_sweep(ctx: AppContext) -> SweepReport:
    """A sweep in its own transaction: `refcheck-server retention run`."""
    with transaction(ctx.sessions) as session:
        return sweep(session, ctx)
