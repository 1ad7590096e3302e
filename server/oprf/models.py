"""Blind evaluations served through `POST /v1/oprf/evaluate`: who, when, how many elements.

Kept for the daily evaluation quota, which counts an organisation's evaluated elements since UTC
midnight. Never the elements themselves: they are blinded, but nothing about a person that the
server does not need is stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from server.db import UUIDPK, Base


class OprfEvaluation(Base):
    __tablename__ = "oprf_evaluations"
    # The quota sums an organisation's elements since UTC midnight on every evaluation.
    __table_args__ = (Index("ix_oprf_evaluations_org_id_at", "org_id", "at"),)

    id: Mapped[UUIDPK]
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    at: Mapped[datetime]
    element_count: Mapped[int] = mapped_column(Integer)
