"""The outbox: one `Notification` per event, one `NotificationDelivery` per recipient address.

A delivery holds exactly what is sent (subject and text of an e-mail, the JSON of a webhook),
rendered when the event happened: a retry two days later sends the same bytes, the same
Message-ID and the same idempotency id, whatever changed in between. What the rows never hold:
an applicant's identifier or detail, a case's category or finding (`server.notifications.content`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import UUIDPK, Base, CreatedAt


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(StrEnum):
    #: Waiting for its next attempt (`next_attempt_at`).
    PENDING = "pending"
    #: Claimed by a worker until `claimed_until`; another worker may take it over after that.
    SENDING = "sending"
    SENT = "sent"
    #: The policy's maximum attempts were used up, or the receiver refused it for good.
    UNDELIVERABLE = "undeliverable"
    #: An e-mail recorded while no SMTP server was configured (`REFCHECK_SMTP_URL`).
    NOT_SENT = "not_sent"


class Notification(Base):
    """One event that was notified (or would have been: an event with no recipient address on
    record is kept too, so the admin sees that nobody was told)."""

    __tablename__ = "notifications"

    id: Mapped[UUIDPK]
    event: Mapped[str] = mapped_column(String(48))
    # The event's own identity ("disclosure.due_soon:<request id>"): a job that runs again, or
    # two workers running it at once, record an event once (unique).
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    # The disclosure request it is about, if any (no foreign key: requests are purged).
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[CreatedAt]


class NotificationDelivery(Base):
    """One message to one address. Its id is the e-mail's Message-ID local part and the
    webhook's idempotency id (`Refcheck-Webhook-Id`)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        # The worker's claim: due rows by status and time.
        Index("ix_notification_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[UUIDPK]
    notification_id: Mapped[str] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    # The organisation whose address this is (its statistics count the attempts).
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # Why the last attempt failed: an error class or an SMTP/HTTP status, never message text
    # (a server's answer may quote the message back).
    last_error: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300))
    # The e-mail's text, or the webhook's JSON body exactly as signed and sent.
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
