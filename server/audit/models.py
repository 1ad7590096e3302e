"""The audit trail: append-only entries, the leaves of the transparency log.

An entry is written with a sequence number the database hands out (no lock on a shared head:
concurrent writers never wait on each other) and becomes a leaf of the RFC 9162 Merkle tree
when the sealer (`server.transparency.sealer`) gives it its `leaf_index`, in sequence order,
within `audit_seal_interval_seconds`. The tree's signed heads are what make the trail
verifiable by anyone: `server.transparency`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, Sequence, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base

_BIGINT = BigInteger().with_variant(Integer(), "sqlite")

#: PostgreSQL's generator of `seq` (migration 0008); SQLite's rowid does the same there.
SEQ_SEQUENCE = Sequence("audit_entries_seq", start=1)


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    # Handed out by the database at insert: increasing, unique, but not gap-free (a rolled-back
    # transaction's number is not reused on PostgreSQL). Deletions show in the tree, not here.
    seq: Mapped[int] = mapped_column(_BIGINT, SEQ_SEQUENCE, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor_principal_id: Mapped[str | None] = mapped_column(String(36))
    actor_org_id: Mapped[str | None] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(36))
    # Counts, states and ids only; never a pseudonym, key value or personal identifier.
    details: Mapped[dict[str, Any]]
    # The hash chain of entries written before the transparency log (migration 0008): kept,
    # and inside their leaves, so the tree commits to the chain exactly as it stood. NULL after.
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    entry_hash: Mapped[str | None] = mapped_column(String(64))
    # Position in the Merkle tree; NULL until sealed. Unique: two sealers can never both place
    # an entry, nor two entries at one place.
    leaf_index: Mapped[int | None] = mapped_column(_BIGINT, unique=True)


class AuditCheckpoint(Base):
    """A signed statement "the chain had `seq` entries and its head hash was `entry_hash`",
    from before the transparency log (migration 0008). No new ones are written: signed tree
    heads replaced them. Kept so `audit verify` still checks the chain they sign.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(_BIGINT, index=True)
    entry_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
