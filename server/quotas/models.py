"""What each organisation was served per UTC day: the counters the daily quotas are decided on."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class DailyUsage(Base):
    """One row per organisation and UTC day, bumped in the transaction of what it counts.

    A counter row, not a `COUNT(*)` over the day's checks: the quota decision is then one
    conditional upsert whose cost does not grow through the day, and the row itself is what
    concurrent requests serialise on (no separate lock on the organisation).
    """

    __tablename__ = "daily_usage"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    # "YYYY-MM-DD" in UTC.
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    evaluated_elements: Mapped[int] = mapped_column(Integer, default=0)
