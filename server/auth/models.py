"""What authentication must remember: the client assertions already used.

RFC 7523 §3 lets a server refuse a reused `jti`; we always do, so an assertion captured in transit
(a proxy log, a browser extension on the HR system) cannot be replayed for a fresh access token.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class UsedAssertion(Base):
    __tablename__ = "used_client_assertions"

    # SHA-256 of (client_id, jti): fixed length whatever the client sent, and the primary key
    # makes two concurrent uses of one assertion collide in the database, not in application code.
    replay_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Kept until the assertion itself expires; after that its `exp` refuses it anyway, so the
    # periodic job deletes the row and the table stays small.
    expires_at: Mapped[datetime] = mapped_column(index=True)
