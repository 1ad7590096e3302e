"""`GET /v1/notifications`: the outbox for the network admin, undeliverable ones first to look at.

Addresses and states only: what a message said stays in the database (its text is the same
for every recipient of the party and holds nothing the admin needs to act on a failure).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from server.auth.deps import Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.notifications.events import Event
from server.notifications.models import DeliveryStatus
from server.notifications.schemas import DeliveryList, DeliveryOut
from server.notifications.services import DeliveryView, list_deliveries
from server.paging import DEFAULT_LIMIT, Limit, Offset

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


def delivery_out(view: DeliveryView) -> DeliveryOut:
    d = view.delivery
    return DeliveryOut(
        id=d.id,
        event=view.event,
        request_id=view.request_id,
        org=view.org_short_name,
        channel=d.channel,
        address=d.address,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_error=d.last_error,
        created_at=d.created_at,
        sent_at=d.sent_at,
    )


@router.get("", response_model=DeliveryList)
def read_notifications(
    session: Db,
    _caller: Annotated[Caller, Depends(require(Permission.NOTIFICATION_READ))],
    status: Annotated[DeliveryStatus | None, Query()] = None,
    event: Annotated[Event | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> DeliveryList:
    """Deliveries, newest first; `status=undeliverable` lists those given up on."""
    items, next_offset = list_deliveries(
        session,
        status=None if status is None else status.value,
        event=None if event is None else event.value,
        limit=limit,
        offset=offset,
    )
    return DeliveryList(items=[delivery_out(v) for v in items], next_offset=next_offset)
