"""Published revisions of the registry filter (docs/protocol.md, "The registry filter").

A revision row keeps what serving needs and nothing about a person beyond what the filter itself
publishes to every checker: its signed header, its changes against the revision before it (so a
client a few revisions behind gets a small delta), and, on the newest revision only, the sorted
values and the fillers' `k`. Older revisions lose those two columns when superseded and are
deleted once no client may still ask for a delta from them (24 hours, or a key change), so the
table stays the size of one filter plus a day's churn.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import UUIDPK, Base

_BIGINT = BigInteger().with_variant(Integer(), "sqlite")


class FilterHead(Base):
    """One row (`id = 1`): the last revision number handed out.

    Every publication locks it, so two workers (or a worker and the CLI) publishing at once
    take turns instead of both signing revision `n + 1` with different sets; and the number
    comes from here rather than from the newest row, so pruning can never make it go back.
    """

    __tablename__ = "filter_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_revision: Mapped[int] = mapped_column(_BIGINT)


class FilterRevision(Base):
    __tablename__ = "filter_revisions"
    __table_args__ = (
        # `?since_sha256=` looks a client's revision up by its list's hash under the current key.
        Index("ix_filter_revisions_key_seq_sha256", "key_seq", "sha256"),
    )

    # A fresh id per row: the in-memory caches are keyed by it, never by the revision number,
    # which a rolled-back publication would hand out again with other contents.
    id: Mapped[UUIDPK]
    revision: Mapped[int] = mapped_column(_BIGINT, unique=True)
    key_id: Mapped[str] = mapped_column(String(16))
    key_seq: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    value_count: Mapped[int] = mapped_column(Integer)
    live_cases: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # The framed signed `filter` header, exactly as served.
    header: Mapped[bytes] = mapped_column(LargeBinary)
    # Against the revision before, 6 bytes per value, ascending; NULL when that revision was
    # under another key (no delta crosses a key change).
    added: Mapped[bytes | None] = mapped_column(LargeBinary)
    removed: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Newest revision only (NULL once superseded): the sorted values, 6 bytes each, and the
    # fillers' `k`, 4 bytes each, ascending.
    value_list: Mapped[bytes | None] = mapped_column(LargeBinary)
    filler_ks: Mapped[bytes | None] = mapped_column(LargeBinary)
