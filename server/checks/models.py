"""Checks run: who checked, when, under which consent and key. Never the keys or the outcome.

The evaluated elements `Z_i` are kept for `entry_fetch_window_seconds` only, so that a hit can be
claimed (docs/protocol.md, "Check", step 5); then the sweep clears them. A verified claim is
recorded as `(check_id, entry_id)` and nothing else: it is what a disclosure request must name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
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
    key_seq: Mapped[int] = mapped_column(Integer)
    # The concatenated 32-byte Z_i, in the order sent; NULL once the fetch window has passed.
    evaluated: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Set on a re-run after a key rotation: the check it replaces (once per original check).
    rerun_of: Mapped[str | None] = mapped_column(String(36), unique=True)


class CheckClaim(Base):
    """A verified claim: this check's evaluation proved a hit on this entry."""

    __tablename__ = "check_claims"

    check_id: Mapped[str] = mapped_column(
        ForeignKey("checks.id", ondelete="CASCADE"), primary_key=True
    )
    # No foreign key: entries are deleted when their case is withdrawn or purged, and the
    # claim must still show that a request named a claimed entry.
    entry_id: Mapped[str] = mapped_column(String(36), primary_key=True)
