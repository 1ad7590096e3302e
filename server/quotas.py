"""Daily per-organisation quotas, shared by the check quota and the evaluation quota.

Both count what an organisation was *served* since the start of the current UTC day (checks run,
elements evaluated) and refuse a request that would go past the policy's number, with the time to
the next UTC midnight. They are decided twice: once without a lock before the expensive work, so
an organisation over its quota does not get the key multiplied for each refused call, and once
under the lock on the organisation's row after it, which is the decision that counts (two
concurrent requests cannot both see "one left"). Refused requests are never counted.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import QuotaExceeded
from server.registry.models import Organisation


def start_of_utc_day(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time(), UTC)


def seconds_to_next_utc_day(now: datetime) -> int:
    tomorrow = start_of_utc_day(now) + timedelta(days=1)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


def lock_organisation(session: Session, org_id: str) -> None:
    """Lock the organisation's row until the transaction ends (PostgreSQL; SQLite has one writer
    anyway), so a quota read after it sees every committed use and no concurrent one slips in."""
    session.execute(select(Organisation.id).where(Organisation.id == org_id).with_for_update())


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
