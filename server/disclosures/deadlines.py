"""The deadlines of disclosure requests: the periodic job that flags a request overdue (counted
once), expires one still unanswered the policy's `disclosure_expiry_days_after_due` days after
its due date, and reminds holders of requests falling due soon.

It moves requests through the state machine's own steps (`server.disclosures.services`:
`finish`, `flag_overdue`, `audit`), so a request expired here is indistinguishable from one
ended by a call. Like every periodic job it runs in a session of its own that `server.jobs`
commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from protocol.vocabulary import DisclosureState
from server.context import AppContext
from server.disclosures.models import UNANSWERED, DisclosureRequest
from server.disclosures.services import audit, finish, flag_overdue, overdue_clause
from server.notifications.services import Event, notify
from server.stats.services import Counter, increment


@dataclass
class DeadlineReport:
    flagged_overdue: int = 0
    expired: int = 0


def run_deadlines(session: Session, ctx: AppContext) -> DeadlineReport:
    """Flag (and count once) requests past their due date, and expire those still unanswered
    the policy's `disclosure_expiry_days_after_due` days later: until then a late answer is
    still accepted (and counted overdue); after it the requester has decided without one, and
    an answer would only move a finding to an organisation that no longer needs it.

    In the caller's transaction; safe to repeat: each row is re-checked under its lock, and
    what is done is recorded so it is never done twice."""
    now = ctx.now()
    report = DeadlineReport()
    late_ids = list(
        session.scalars(
            select(DisclosureRequest.id)
            .where(overdue_clause(now), DisclosureRequest.overdue_flagged_at.is_(None))
            .order_by(DisclosureRequest.id)
        )
    )
    for request_id in late_ids:
        req = _locked_if(session, request_id, overdue_clause(now))
        if req is not None and flag_overdue(session, req, now):
            audit(session, ctx, None, "overdue", req, due_at=req.due_at.isoformat())
            notify(session, ctx, Event.DISCLOSURE_OVERDUE, request=req)
            report.flagged_overdue += 1
    cutoff = now - timedelta(days=ctx.policy.disclosure_expiry_days_after_due)
    stale = and_(DisclosureRequest.state.in_(UNANSWERED), DisclosureRequest.due_at < cutoff)
    stale_ids = list(
        session.scalars(select(DisclosureRequest.id).where(stale).order_by(DisclosureRequest.id))
    )
    for request_id in stale_ids:
        req = _locked_if(session, request_id, stale)
        if req is None:
            continue
        flag_overdue(session, req, now)
        finish(req, DisclosureState.EXPIRED, "deadline_passed", now)
        audit(session, ctx, None, "expire", req, reason="deadline_passed")
        increment(session, req.holder_org_id, now, Counter.DISCLOSURE_REQUESTS_EXPIRED)
        notify(session, ctx, Event.DISCLOSURE_EXPIRED, request=req)
        report.expired += 1
    # Reminders of requests falling due soon (each once: `notify` records an event once).
    soon = and_(
        DisclosureRequest.state.in_(UNANSWERED),
        DisclosureRequest.due_at >= now,
        DisclosureRequest.due_at <= now + timedelta(days=ctx.policy.notification_due_soon_days),
    )
    for req in session.scalars(
        select(DisclosureRequest).where(soon).order_by(DisclosureRequest.id)
    ):
        notify(session, ctx, Event.DISCLOSURE_DUE_SOON, request=req)
    return report


def _locked_if(
    session: Session, request_id: str, condition: ColumnElement[bool]
) -> DisclosureRequest | None:
    return session.scalars(
        select(DisclosureRequest)
        .where(DisclosureRequest.id == request_id, condition)
        .with_for_update()
    ).first()


def deadline_job(session: Session, ctx: AppContext) -> None:
    """`server.jobs` entry point (the runner commits and logs failures)."""
    run_deadlines(session, ctx)
