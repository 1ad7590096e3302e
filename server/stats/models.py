"""Monthly counters per organisation: the figures MDS members report yearly, and the volumes the
secretariat watches for fishing.

Counters, not queries over the source tables: purged cases leave no row to count, and a new
figure (disclosure requests, responses, rejections) is one more name, not a new table.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class StatCounter(Base):
    __tablename__ = "stat_counters"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    # "YYYY-MM" in UTC.
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)
