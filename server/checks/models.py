"""Checks run: who checked, when, under which consent, with how many keys. Never the keys, the
buckets or the outcome (the server does not know the outcome)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from server.db import UUIDPK, Base


class Check(Base):
    __tablename__ = "checks"
    # The daily quota counts in `daily_usage`, not over this table: no (org_id, at) index to keep.

    id: Mapped[UUIDPK]
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), index=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    at: Mapped[datetime]
    key_count: Mapped[int] = mapped_column(Integer)
