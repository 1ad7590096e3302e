"""Consent receipts: the applicant's specific, time-limited permission to be checked.

A row holds only what the server enforces (purpose, validity, budget, withdrawal) and the lookup
code's hash. What the HR system knows about the consent (its applicant and position references,
the signed form's SHA-256, the self-declaration) is `sealed_details`, sealed by the SDK to the
hiring organisation's X25519 key: with an HR system's applicant list, a reader of this table
cannot tell which applicant a consent (and so a check or a match) was about.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import UUIDPK, Base, CreatedAt


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[UUIDPK]
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    recorded_by: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    purpose: Mapped[str] = mapped_column(String(40))
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
    # protocol.consent_details: always SEALED_SIZE bytes; the server can neither open it nor
    # tell one applicant's from another's by its length.
    sealed_details: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[CreatedAt]
