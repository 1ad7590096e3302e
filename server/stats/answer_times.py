"""How early or late holders answer disclosure requests, against each request's deadline.

Read from the disclosure requests themselves (their due and answer instants), not from counters:
a counter per bucket would have to be incremented where requests are answered and expired. The
consequence is the retention sweeper's: a request ended more than the policy's
`disclosure_record_retention_days` ago is deleted and no longer counted (the yearly counters of
`GET /v1/stats` stay).

Counts only, network-wide: no request, organisation or instant finer than the month. A request
belongs to the month (UTC) it fell due, as the "overdue" counter does.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from server.disclosures.models import UNANSWERED, DisclosureRequest, DisclosureState
from server.stats.services import month_of, months_of_year

__all__ = ["AnswerTime", "answer_time", "answer_times"]

DAY = timedelta(days=1)


class AnswerTime(StrEnum):
    """Where a request's answer fell against its deadline. Early answers count whole days left
    before the due instant (an answer 2.5 days before it is 2 days early); late answers count
    days begun after it (an hour late is 1 day late)."""

    EARLY_7_PLUS = "early_7_plus"
    EARLY_3_TO_6 = "early_3_to_6"
    EARLY_0_TO_2 = "early_0_to_2"
    LATE_1_TO_3 = "late_1_to_3"
    LATE_4_PLUS = "late_4_plus"
    # Not answered: still waiting after the due instant, or expired unanswered.
    OPEN_OVERDUE = "open_overdue"
    EXPIRED = "expired"


def answer_time(
    due_at: datetime, answered_at: datetime | None, state: str, now: datetime
) -> AnswerTime | None:
    """The bucket of one request, or None when it has nothing to say about answer times yet
    (unanswered and not yet due) or ever (withdrawn or closed without an answer)."""
    if answered_at is not None:
        if answered_at <= due_at:
            early = math.floor((due_at - answered_at) / DAY)
            if early >= 7:
                return AnswerTime.EARLY_7_PLUS
            return AnswerTime.EARLY_3_TO_6 if early >= 3 else AnswerTime.EARLY_0_TO_2
        late = math.ceil((answered_at - due_at) / DAY)
        return AnswerTime.LATE_1_TO_3 if late <= 3 else AnswerTime.LATE_4_PLUS
    if state == DisclosureState.EXPIRED:
        return AnswerTime.EXPIRED
    if state in UNANSWERED and now > due_at:
        return AnswerTime.OPEN_OVERDUE
    return None


def _zeroes() -> dict[str, int]:
    return {b.value: 0 for b in AnswerTime}


def answer_times(session: Session, year: int, now: datetime) -> dict[str, dict[str, int]]:
    """Every month of `year` (by due date, UTC) with every bucket's count, 0 when none."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    in_year = DisclosureRequest.due_at >= start
    # The year after 9999 has no datetime: that year runs to the end of time.
    if year < datetime.max.year:
        in_year = and_(in_year, DisclosureRequest.due_at < datetime(year + 1, 1, 1, tzinfo=UTC))
    months = {m: _zeroes() for m in months_of_year(year)}
    rows = session.execute(
        select(
            DisclosureRequest.due_at, DisclosureRequest.answered_at, DisclosureRequest.state
        ).where(in_year)
    )
    for due_at, answered_at, state in rows:
        bucket = answer_time(due_at, answered_at, state, now)
        if bucket is not None:
            months[month_of(due_at)][bucket.value] += 1
    return months
