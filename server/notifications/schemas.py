"""Wire shapes of the notification outbox (the admin's view; the message text is not served)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class DeliveryOut(BaseModel):
    id: str
    event: str
    request_id: str | None
    org: str
    channel: str
    address: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next_offset: int | None
