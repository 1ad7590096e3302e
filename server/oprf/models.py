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
