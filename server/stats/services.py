"""Counting events as they happen, and reading the counts back by month.

Every increment runs in the transaction of the event it counts, so a rolled-back registration or
check is not counted and a committed one always is. Adding a figure is adding a `Counter` member
and calling `increment` where the event happens; readers report every known counter (0 when
nothing happened), so a report's shape does not depend on activity.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import TextClause, select, text
from sqlalchemy.orm import Session

from server.stats.models import StatCounter


class Counter(StrEnum):
    CASES_REGISTERED = "cases_registered"
    CASES_WITHDRAWN = "cases_withdrawn"
    CASES_PURGED = "cases_purged"
    # MDS "recruitments": each recruitment is one recruitment consent.
    CONSENTS_RECORDED = "consents_recorded"
    CONSENTS_RECRUITMENT = "consents_recruitment"
    CONSENTS_RESCREENING = "consents_rescreening"
    CONSENTS_WITHDRAWN = "consents_withdrawn"
    # Registrations withdrawn within 30 days of registering: a registration can tell a focal
    # point that the person was already registered, so a fake one must show (docs/protocol.md,
    # "Threats").
    CASES_WITHDRAWN_WITHIN_30_DAYS = "cases_withdrawn_within_30_days"
    CHECKS_RUN = "checks_run"
    # Elements evaluated for registrations (keys_per_check per case): each is a query of the key.
    REGISTRATION_EVALUATIONS = "registration_evaluations"
    # Checks refused (consent expired, withdrawn, used up or foreign, quota, too many keys, MoU,
    # invalid element, stale key): what fishing looks like, for the secretariat to notice.
    CHECKS_REFUSED = "checks_refused"
    # Disclosure workflow (server/disclosures). Requests and responses are counted on both
    # sides: the requester makes and receives, the holder receives and gives.
    DISCLOSURE_REQUESTS_MADE = "disclosure_requests_made"
    DISCLOSURE_REQUESTS_RECEIVED = "disclosure_requests_received"
    DISCLOSURE_RESPONSES_GIVEN = "disclosure_responses_given"
    DISCLOSURE_RESPONSES_RECEIVED = "disclosure_responses_received"
    # Counted once per request, for the holder, in the month the request fell due.
    DISCLOSURE_REQUESTS_OVERDUE = "disclosure_requests_overdue"
    DISCLOSURE_REQUESTS_EXPIRED = "disclosure_requests_expired"
    # Holders' answers "not the same person", counted for the requester: a member's software
    # could put other people's keys into a check's padding, and only the holders can notice.
    NOT_SAME_PERSON_ANSWERS = "not_same_person_answers"
    # Hiring outcomes, once per applicant (consent), for the requester.
    APPLICANTS_HIRED = "applicants_hired"
    APPLICANTS_REJECTED = "applicants_rejected"
    APPLICANTS_NOT_HIRED_OTHER = "applicants_not_hired_other"
    # Notifications (server.notifications), for the organisation whose address it is: every
    # attempt to deliver, those that arrived, and those given up as undeliverable.
    NOTIFICATION_ATTEMPTS = "notification_attempts"
    NOTIFICATIONS_DELIVERED = "notifications_delivered"
    NOTIFICATIONS_UNDELIVERABLE = "notifications_undeliverable"


#: The yearly figures MDS members publish, and the counter each is read from.
MDS_FIGURES: dict[str, Counter] = {
    "recruitments": Counter.CONSENTS_RECRUITMENT,
    "requests_made": Counter.DISCLOSURE_REQUESTS_MADE,
    "responses_received": Counter.DISCLOSURE_RESPONSES_RECEIVED,
    "responses_given": Counter.DISCLOSURE_RESPONSES_GIVEN,
    "applicants_rejected": Counter.APPLICANTS_REJECTED,
    "overdue_requests": Counter.DISCLOSURE_REQUESTS_OVERDUE,
}


def mds_figures(totals: dict[str, int]) -> dict[str, int]:
    """The MDS yearly figures out of a year's counter totals (missing counters count 0)."""
    return {name: totals.get(counter.value, 0) for name, counter in MDS_FIGURES.items()}


def month_of(at: datetime) -> str:
    return at.strftime("%Y-%m")


def increment(session: Session, org_id: str, at: datetime, name: Counter, by: int = 1) -> None:
    """Add `by` to a counter in one statement: an upsert, so two transactions counting the same
    month never lose an update nor collide on the primary key."""
    increment_many(session, org_id, at, {name: by})


def increment_many(
    session: Session, org_id: str, at: datetime, counts: Mapping[Counter, int]
) -> None:
    """`increment` for several counters of one organisation and month, in one statement (a
    check counts itself and its keys): one round trip to the database instead of one each."""
    if not counts:
        return
    params: dict[str, object] = {"org_id": org_id, "month": month_of(at)}
    for i, (name, by) in enumerate(counts.items()):
        params[f"name{i}"] = str(name)
        params[f"value{i}"] = by
    session.connection().execute(_upsert(len(counts)), params)


@functools.lru_cache(maxsize=8)
def _upsert(rows: int) -> TextClause:
    """The upsert of `rows` counters, as SQL text both backends accept unchanged (PostgreSQL and
    SQLite >= 3.24 share `ON CONFLICT ... DO UPDATE` and `excluded`).

    Text, made once per row count, because SQLAlchemy cannot cache the compiled form of its
    `on_conflict_do_update` construct: built per call, it was compiled per call, which cost more
    than the statement itself (about a millisecond a check on a small machine).
    """
    values = ", ".join(f"(:org_id, :month, :name{i}, :value{i})" for i in range(rows))
    return text(
        "INSERT INTO stat_counters (org_id, month, name, value) "
        f"VALUES {values} "
        "ON CONFLICT (org_id, month, name) "
        "DO UPDATE SET value = stat_counters.value + excluded.value"
    )


def _zeroes() -> dict[str, int]:
    return {c.value: 0 for c in Counter}


@dataclass
class OrgFigures:
    org_id: str
    months: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, int]:
        total = _zeroes()
        for counters in self.months.values():
            for name, value in counters.items():
                total[name] = total.get(name, 0) + value
        return total


def months_of_year(year: int) -> list[str]:
    return [f"{year:04d}-{m:02d}" for m in range(1, 13)]


def figures(session: Session, year: int, *, org_id: str | None = None) -> dict[str, OrgFigures]:
    """Counters of `year` per organisation (all of them, or just `org_id`), every month and every
    known counter present."""
    months = months_of_year(year)
    stmt = select(StatCounter).where(StatCounter.month.in_(months))
    if org_id is not None:
        stmt = stmt.where(StatCounter.org_id == org_id)
    raw: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: {m: _zeroes() for m in months})
    for row in session.scalars(stmt):
        raw[row.org_id][row.month][row.name] = row.value
    if org_id is not None and org_id not in raw:
        raw[org_id] = {m: _zeroes() for m in months}
    return {oid: OrgFigures(org_id=oid, months=m) for oid, m in raw.items()}


def network_months(per_org: dict[str, OrgFigures], year: int) -> dict[str, dict[str, int]]:
    """The month-by-month sum over organisations."""
    out = {m: _zeroes() for m in months_of_year(year)}
    for figs in per_org.values():
        for month, counters in figs.months.items():
            for name, value in counters.items():
                out[month][name] = out[month].get(name, 0) + value
    return out
