"""The OPRF keys the network has announced, one row per `key_seq`.

The newest row is the current key (the rotation's switch, next step of protocol v2, is setting
it). Each row keeps the signed `oprf-key` announcement exactly as it was signed, so every client
verifies the same bytes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class OprfKeyAnnouncement(Base):
    __tablename__ = "oprf_keys"

    key_seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    registration_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    # The framed signed object (docs/protocol.md, "Signed objects").
    announcement: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class CurrentOprfKey(Base):
    """The current-key row: one row, whose `key_seq` says which announced key is in force.

    Registrations and checks read it `FOR SHARE` until they commit; a rotation takes it `FOR
    UPDATE`, re-keys every entry and sets it, and that commit is the switch (docs/protocol.md,
    "Key rotation"). Every worker reads it before using the key, so none needs a restart.
    """

    __tablename__ = "oprf_current"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key_seq: Mapped[int] = mapped_column(Integer)
    key_id: Mapped[str] = mapped_column(String(16))
    switched_at: Mapped[datetime]
