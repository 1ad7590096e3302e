"""The transparency log at rest: the Merkle tree's nodes, its signed heads, witnesses'
cosignatures, and the sealer's lock row.

The audit entries are the leaves (`server.audit.models.AuditEntry.leaf_index`). Nodes are a
cache of the tree for answering proofs in O(log n) look-ups; nothing trusts them: `audit
verify` recomputes the tree from the entries, and a client checks every proof against a head
signed by the network key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base

_BIGINT = BigInteger().with_variant(Integer(), "sqlite")


class MerkleNode(Base):
    """The hash of the complete subtree of leaves `position·2^level .. (position+1)·2^level − 1`;
    level 0 holds the leaf hashes."""

    __tablename__ = "transparency_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class TreeHead(Base):
    """A signed `tree-head` object (docs/protocol.md, "Signed objects"), one per seal.

    `id` counts heads from 1 without gaps (the sealer sets it under its lock, not a database
    sequence), so a head deleted from the middle leaves a gap that `audit verify` reports.
    """

    __tablename__ = "transparency_tree_heads"

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(_BIGINT, unique=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime]
    # The framed signed object without cosignatures, exactly as signed.
    signed: Mapped[bytes] = mapped_column(LargeBinary)


class Cosignature(Base):
    """A witness's cosignature of a signed object (a tree head, a filter header or a key
    announcement), served inside the object's framing from then on."""

    __tablename__ = "transparency_cosignatures"

    # SHA-256 of the object's header bytes: what a cosignature signs (with the type).
    object_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    witness_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class SealerLock(Base):
    """One row (`id = 1`) that a sealer locks for its run: only sealers ever touch it, so the
    lock elects one sealer among the workers without making any writer wait."""

    __tablename__ = "transparency_sealer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
