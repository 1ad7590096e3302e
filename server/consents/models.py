"""Consent receipts: the applicant's specific, time-limited permission to be checked."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import UUIDPK, Base, CreatedAt


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[UUIDPK]
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    recorded_by: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    # The HR system's own opaque reference for the applicant, never a name or an address.
    applicant_ref: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(40))
    position_ref: Mapped[str] = mapped_column(String(128))
    form_sha256: Mapped[str] = mapped_column(String(64))
    self_declared_finding: Mapped[bool] = mapped_column(Boolean)
    consented_at: Mapped[datetime]
    # Last day (UTC) on which the consent may be used.
    expires_on: Mapped[date] = mapped_column(Date)
    max_checks: Mapped[int] = mapped_column(Integer)
    # Incremented only by a conditional UPDATE, so concurrent checks cannot overspend the budget.
    checks_used: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn_at: Mapped[datetime | None]
    # SHA-256 of the applicant's lookup code; the code itself is shown once and never stored, so
    # a database reader cannot use it to see who checked the applicant.
    lookup_code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[CreatedAt]
