"""Checks run: who checked, when, under which consent, with how many keys. Never the keys, the
buckets or the outcome (the server does not know the outcome)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from server.db import UUIDPK, Base


class Check(Base):
    __tablename__ = "checks"
    # The daily quota counts an organisation's checks since UTC midnight on every check.
    __table_args__ = (Index("ix_checks_org_id_at", "org_id", "at"),)

    id: Mapped[UUIDPK]
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), index=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    at: Mapped[datetime]
    key_count: Mapped[int] = mapped_column(Integer)
