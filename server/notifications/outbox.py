"""Claiming deliveries and recording what became of them: safe with any number of workers.

A claim is short: in one transaction a worker marks due rows `sending`, with itself as
`claimed_by` and a lease (`claimed_until`), and counts the attempt. It sends outside any
transaction (an SMTP server may take seconds; SQLite has one writer), then records the result in
another, only if the row is still its own. A worker that dies mid-send leaves its rows `sending`;
once the lease has run out another worker takes them over, so nothing is lost, and the receiver
sees at most a duplicate with the same Message-ID or idempotency id.

How two workers never claim the same row:
  * PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` locks the rows one worker takes; another
    worker's select skips them instead of waiting, and takes the next ones.
  * SQLite: one writer at a time (the worker's transaction begins IMMEDIATE), and each row is
    claimed by a compare-and-set `UPDATE ... WHERE id = :id AND <still due>`: a row another
    worker claimed first no longer matches, and this worker leaves it.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from server.context import AppContext
from server.notifications.models import (
    Channel,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
)
from server.stats.services import Counter, increment


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds until `claimed_until`, with what it needs to send it."""

    id: str
    event: str
    org_id: str
    channel: Channel
    address: str
    subject: str
    body: str
    attempts: int
    created_at: datetime


def _due(now: datetime, channels: tuple[Channel, ...]) -> ColumnElement[bool]:
    d = NotificationDelivery
    return and_(
        d.channel.in_([c.value for c in channels]),
        or_(
            and_(d.status == DeliveryStatus.PENDING.value, d.next_attempt_at <= now),
            # A worker that died mid-send: its lease ran out.
            and_(d.status == DeliveryStatus.SENDING.value, d.claimed_until < now),
        ),
    )


def backoff(policy_base: int, policy_max: int, attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: base, 2·base, 4·base, ... at most max."""
    return timedelta(seconds=min(policy_max, policy_base * 2 ** max(0, attempts - 1)))


def claim(
    session: Session,
    ctx: AppContext,
    worker_id: str,
    *,
    limit: int,
    lease: timedelta,
    channels: tuple[Channel, ...] = (Channel.EMAIL, Channel.WEBHOOK),
) -> list[Claimed]:
    """Claim up to `limit` due deliveries for `worker_id` and count the attempts, in the
    caller's transaction (commit it before sending)."""
    now = ctx.now()
    d = NotificationDelivery
    due = _due(now, channels)
    order = (d.next_attempt_at, d.id)
    claim_values = {
        "status": DeliveryStatus.SENDING.value,
        "claimed_by": worker_id,
        "claimed_until": now + lease,
        "attempts": d.attempts + 1,
    }
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        ids = list(
            session.scalars(
                select(d.id)
                .where(due)
                .order_by(*order)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            session.execute(
                update(d)
                .where(d.id.in_(ids))
                .values(**claim_values)
                .execution_options(synchronize_session=False)
            )
    else:
        ids = []
        for candidate in session.scalars(select(d.id).where(due).order_by(*order).limit(limit)):
            ids.append(candidate)
        claimed = []
        for candidate in ids:
            result = session.execute(
                update(d)
                .where(d.id == candidate, due)
                .values(**claim_values)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                claimed.append(candidate)
        ids = claimed
    if not ids:
        return []
    rows = session.execute(
        select(d, Notification.event)
        .join(Notification, Notification.id == d.notification_id)
        .where(d.id.in_(ids), d.claimed_by == worker_id)
        .order_by(*order)
        .execution_options(populate_existing=True)
    ).all()
    per_org = Tally(row[0].org_id for row in rows)
    for org_id, count in sorted(per_org.items()):
        increment(session, org_id, now, Counter.NOTIFICATION_ATTEMPTS, count)
    return [
        Claimed(
            id=row.id,
            event=event,
            org_id=row.org_id,
            channel=Channel(row.channel),
            address=row.address,
            subject=row.subject,
            body=row.body,
            attempts=row.attempts,
            created_at=row.created_at,
        )
        for row, event in rows
    ]


def _mine(worker_id: str, delivery_id: str) -> ColumnElement[bool]:
    d = NotificationDelivery
    return and_(
        d.id == delivery_id,
        d.status == DeliveryStatus.SENDING.value,
        d.claimed_by == worker_id,
    )


def record_sent(session: Session, ctx: AppContext, worker_id: str, claimed: Claimed) -> bool:
    """Mark a claimed delivery sent. False if the row is no longer this worker's (its lease ran
    out and another worker took it over: the receiver may get it twice, same ids)."""
    now = ctx.now()
    result = session.execute(
        update(NotificationDelivery)
        .where(_mine(worker_id, claimed.id))
        .values(
            status=DeliveryStatus.SENT.value,
            sent_at=now,
            claimed_by=None,
            claimed_until=None,
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    increment(session, claimed.org_id, now, Counter.NOTIFICATIONS_DELIVERED)
    return True


def record_failure(
    session: Session,
    ctx: AppContext,
    worker_id: str,
    claimed: Claimed,
    reason: str,
    *,
    permanent: bool,
) -> DeliveryStatus | None:
    """Schedule the next attempt with exponential back-off, or give up (`undeliverable`) after
    the policy's maximum attempts or a permanent refusal. Returns the new status, None if the
    row is no longer this worker's."""
    now = ctx.now()
    policy = ctx.policy
    final = permanent or claimed.attempts >= policy.notification_max_attempts
    status = DeliveryStatus.UNDELIVERABLE if final else DeliveryStatus.PENDING
    wait = backoff(
        policy.notification_retry_base_seconds,
        policy.notification_retry_max_seconds,
        claimed.attempts,
    )
    result = session.execute(
        update(NotificationDelivery)
        .where(_mine(worker_id, claimed.id))
        .values(
            status=status.value,
            next_attempt_at=now if final else now + wait,
            claimed_by=None,
            claimed_until=None,
            last_error=reason[:200],
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    if final:
        increment(session, claimed.org_id, now, Counter.NOTIFICATIONS_UNDELIVERABLE)
    return status
