"""Daily per-organisation quotas: checks run (`daily_check_quota`) and elements evaluated for
registration (`daily_evaluation_quota`).

Both count what an organisation was *served* since the start of the current UTC day, in one
`daily_usage` row per organisation and day, and refuse a request that would go past the policy's
number, with the time to the next UTC midnight. `take_daily` decides and counts in one
conditional upsert, in the transaction of what it counts, which commits before the key's work
leaves; two concurrent requests serialise on the row and cannot both take "the last one".
Refused requests are never counted. A check evaluates before its write (so that the row is not
held while the key works), and reads the row first with `within_daily`: a call made when the
quota is already spent costs no multiplication; only checks racing for the last ones can.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from server.errors import QuotaExceeded
from server.policy.schema import NetworkPolicy


class Usage(NamedTuple):
    checks: int
    evaluated_elements: int


def start_of_utc_day(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time(), UTC)


def day_of(now: datetime) -> str:
    """The `daily_usage.day` of `now`: its UTC date."""
    return now.astimezone(UTC).date().isoformat()


def seconds_to_next_utc_day(now: datetime) -> int:
    tomorrow = start_of_utc_day(now) + timedelta(days=1)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


# SQL text both backends accept unchanged (PostgreSQL, SQLite >= 3.35: `ON CONFLICT ... DO UPDATE
# ... WHERE` and `RETURNING`), made once: SQLAlchemy would compile its upsert construct per call.
_USAGE = text(
    "SELECT checks, evaluated_elements FROM daily_usage WHERE org_id = :org_id AND day = :day"
)
_TAKE = text(
    "INSERT INTO daily_usage (org_id, day, checks, evaluated_elements) "
    "VALUES (:org_id, :day, :checks, :elements) "
    "ON CONFLICT (org_id, day) DO UPDATE SET "
    "checks = daily_usage.checks + excluded.checks, "
    "evaluated_elements = daily_usage.evaluated_elements + excluded.evaluated_elements "
    "WHERE daily_usage.checks + excluded.checks <= :check_quota "
    "AND daily_usage.evaluated_elements + excluded.evaluated_elements <= :element_quota "
    "RETURNING checks"
)


_PRUNE = text("DELETE FROM daily_usage WHERE day < :oldest")


def prune_daily_usage(session: Session, now: datetime) -> int:
    """Delete usage rows older than yesterday (UTC): a quota only ever reads today's row, and
    yesterday's is kept for a request that started before midnight. Counts of what was used,
    not of whom, so their deletion is not audited; the monthly statistics keep the totals."""
    oldest = day_of(now - timedelta(days=1))
    result = session.execute(_PRUNE, {"oldest": oldest})
    return int(getattr(result, "rowcount", 0) or 0)


def usage_today(session: Session, org_id: str, now: datetime) -> Usage:
    row = session.connection().execute(_USAGE, {"org_id": org_id, "day": day_of(now)}).first()
    return Usage(0, 0) if row is None else Usage(int(row[0]), int(row[1]))


def enforce_daily_quota(*, used: int, adding: int, quota: int, now: datetime, what: str) -> None:
    """Refuse (429 `quota-exceeded`) when `used + adding` would exceed `quota` for today.

    `what` names the unit in the detail ("checks", "evaluated elements"), never the caller's data.
    """
    if used + adding > quota:
        left = max(0, quota - used)
        raise QuotaExceeded(
            f"the organisation's daily quota of {quota} {what} does not allow {adding} more "
            f"today ({left} left)",
            retry_after_seconds=seconds_to_next_utc_day(now),
        )


def take_daily(
    session: Session,
    policy: NetworkPolicy,
    org_id: str,
    now: datetime,
    *,
    checks: int = 0,
    elements: int = 0,
) -> None:
    """Count `checks` and `elements` against today's quotas in the caller's transaction, or refuse.

    One statement: the upsert adds only when the sums stay within both quotas, and returns no row
    otherwise. The first use of a day inserts without that test, which is why anything larger than
    a whole quota is refused here first (the policy makes one request's worth always fit).
    """
    _refuse_if_over(policy, Usage(0, 0), now, checks=checks, elements=elements)
    taken = (
        session.connection()
        .execute(
            _TAKE,
            {
                "org_id": org_id,
                "day": day_of(now),
                "checks": checks,
                "elements": elements,
                "check_quota": policy.daily_check_quota,
                "element_quota": policy.daily_evaluation_quota,
            },
        )
        .first()
    )
    if taken is None:
        _refuse_if_over(
            policy, usage_today(session, org_id, now), now, checks=checks, elements=elements
        )
        raise AssertionError("daily_usage refused an increment that fits the quotas")


def within_daily(
    session: Session,
    policy: NetworkPolicy,
    org_id: str,
    now: datetime,
    *,
    checks: int = 0,
    elements: int = 0,
) -> None:
    """Refuse, without counting anything or locking the row, what today's usage already rules
    out: the read before the key works, for a service that counts with `take_daily` after."""
    _refuse_if_over(
        policy, usage_today(session, org_id, now), now, checks=checks, elements=elements
    )


def _refuse_if_over(
    policy: NetworkPolicy, used: Usage, now: datetime, *, checks: int, elements: int
) -> None:
    if checks:
        enforce_daily_quota(
            used=used.checks,
            adding=checks,
            quota=policy.daily_check_quota,
            now=now,
            what="checks",
        )
    if elements:
        enforce_daily_quota(
            used=used.evaluated_elements,
            adding=elements,
            quota=policy.daily_evaluation_quota,
            now=now,
            what="evaluated elements",
        )
