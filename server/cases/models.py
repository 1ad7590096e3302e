"""Registered cases and their entries: the only place the server keeps anything about a person.

A case row holds the finding's metadata and who registered it; the person is present only as
exactly `keys_per_check` entries (docs/protocol.md, "Pseudonyms, tags, handles"), real keys and
verifiable pads alike, each `(entry_id, case_id, key_seq, P̂, tag, sealed_handle)`. Nothing
else: no kind, no strength, no bucket, no count. `P̂ = w·P` with `w` in the key file, so the
database alone neither tests an identifier nor opens a handle.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db import UUIDPK, Base, CreatedAt


class CaseStatus:
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        # A check joins every entry of its buckets to its case for these two columns: covered,
        # that is one index search per entry instead of an index search and a table read
        # (about a quarter of the bucket read at a million pseudonyms, on SQLite).
        Index("ix_cases_id_status_retention_until", "id", "status", "retention_until"),
    )

    id: Mapped[UUIDPK]
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    registered_by: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    category: Mapped[str] = mapped_column(String(40))
    child_victim: Mapped[bool] = mapped_column(Boolean)
    finding: Mapped[str] = mapped_column(String(40))
    sanction: Mapped[str] = mapped_column(String(40))
    finding_date: Mapped[date] = mapped_column(Date)
    legal_basis: Mapped[str] = mapped_column(String(40))
    # The sweeper deletes the case the day after this date; indexed because it scans by it.
    retention_until: Mapped[date] = mapped_column(Date, index=True)
    mou_reference: Mapped[str] = mapped_column(String(64))
    subject_notified_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.ACTIVE, index=True)
    created_at: Mapped[CreatedAt]
    withdrawn_at: Mapped[datetime | None]
    withdrawal_reason: Mapped[str | None] = mapped_column(String(32))
    withdrawal_note: Mapped[str | None] = mapped_column(Text)


class Pseudonym(Base):
    """One entry of a registered case, as the server can use it without knowing the person."""

    __tablename__ = "pseudonyms"
    __table_args__ = (
        # The entries call looks entries up by tag under the current key: its only access path.
        Index("ix_pseudonyms_key_seq_tag", "key_seq", "tag"),
    )

    id: Mapped[UUIDPK]
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    key_seq: Mapped[int] = mapped_column(Integer)
    # w·P: P itself would open the handle; w lives in the key file.
    p_hat: Mapped[bytes] = mapped_column(LargeBinary(32))
    tag: Mapped[bytes] = mapped_column(LargeBinary(16))
    sealed_handle: Mapped[bytes] = mapped_column(LargeBinary)


class IdempotencyRecord(Base):
    """Which case a registration's `Idempotency-Key` created, and a hash of the request body.

    A retried request with the same key and body answers with that case instead of registering
    the person twice; the same key with another body is refused. The row goes with its case.
    """

    __tablename__ = "case_idempotency_keys"
    __table_args__ = (UniqueConstraint("org_id", "key", name="uq_case_idempotency_keys_org_key"),)

    id: Mapped[UUIDPK]
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    key: Mapped[str] = mapped_column(String(128))
    request_sha256: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[CreatedAt]
