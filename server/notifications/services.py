"""Recording notifications in the event's transaction, the periodic notices, and the admin's view.

    from server.notifications.services import Event, notify

    notify(session, ctx, Event.DISCLOSURE_REQUESTED, request=disclosure)        # disclosures
    notify(session, ctx, Event.KEY_ROTATED, facts={"key_seq": 3, "key_id": kid})  # rotation

`notify` only adds rows to the session (it never commits): the caller's commit makes the event
and its notifications durable together (a transactional outbox). The delivery worker
(`server.notifications.worker`) sends them afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol.signed import format_time
from server.context import AppContext
from server.db import new_id
from server.notifications.content import render, webhook_body
from server.notifications.events import (
    DISCLOSURE_EVENTS,
    FACTS,
    MOU_EVENTS,
    RECIPIENTS,
    Event,
    Party,
    Recipient,
)
from server.notifications.models import (
    Channel,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
)
from server.registry.addresses import for_role
from server.registry.models import Organisation, OrgStatus, OrgType
from server.registry.services import secretariat

__all__ = ["Event", "email_configured", "mou_expiry_job", "notify", "prune", "retry"]

FactValue = str | int | None


class DisclosureLike(Protocol):
    """What `notify` reads of a disclosure request (`server.disclosures.models`)."""

    @property
    def id(self) -> str: ...
    @property
    def requester_org_id(self) -> str: ...
    @property
    def holder_org_id(self) -> str: ...
    @property
    def due_at(self) -> datetime: ...


def email_configured(ctx: AppContext) -> bool:
    settings = ctx.settings
    return bool(settings.smtp_url.get_secret_value() and settings.mail_from)


def _name(org: Organisation) -> str:
    return f"{org.legal_name} ({org.short_name})"


def _dedupe_key(
    event: Event,
    now: datetime,
    request: DisclosureLike | None,
    member: Organisation | None,
    facts: Mapping[str, FactValue],
) -> str:
    if request is not None:
        return f"{event.value}:{request.id}"
    if member is not None:
        expires = member.mou_expires_on.isoformat() if member.mou_expires_on else "none"
        return f"{event.value}:{member.id}:{expires}"
    if event == Event.KEY_ROTATED and facts.get("key_id"):
        return f"{event.value}:{facts['key_id']}"
    # Audit failures: once a day for the same finding, however often verification runs.
    detail = ":".join(f"{k}={facts[k]}" for k in sorted(facts))
    return f"{event.value}:{now.date().isoformat()}:{detail}"[:160]


@dataclass(frozen=True)
class _Target:
    party: Party
    org: Organisation
    channel: Channel
    address: str


def _targets(
    session: Session,
    event: Event,
    request: DisclosureLike | None,
    member: Organisation | None,
) -> list[_Target]:
    """Every (party, organisation, channel, address) the event goes to, each address once."""
    targets: list[_Target] = []
    seen: set[tuple[str, Channel, str]] = set()
    network = secretariat(session)
    for recipient in RECIPIENTS[event]:
        org = _party_org(session, recipient, request, member, network)
        if org is None:
            continue
        for channel, entries, key in (
            (Channel.EMAIL, org.notify_emails, "address"),
            (Channel.WEBHOOK, org.webhooks, "url"),
        ):
            for address in for_role(entries, key, recipient.role):
                marker = (org.id, channel, address.lower() if channel == Channel.EMAIL else address)
                if marker not in seen:
                    seen.add(marker)
                    targets.append(_Target(recipient.party, org, channel, address))
    return targets


def _party_org(
    session: Session,
    recipient: Recipient,
    request: DisclosureLike | None,
    member: Organisation | None,
    network: Organisation | None,
) -> Organisation | None:
    if recipient.party == "secretariat":
        return network
    if recipient.party == "member":
        return member
    assert request is not None
    org_id = request.holder_org_id if recipient.party == "holder" else request.requester_org_id
    return session.get(Organisation, org_id)


def _values(
    session: Session,
    ctx: AppContext,
    event: Event,
    request: DisclosureLike | None,
    member: Organisation | None,
    facts: Mapping[str, FactValue],
    network: Organisation | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the templates may say, and the webhook's `data`: nothing else reaches a message."""
    values: dict[str, Any] = {
        "network_id": ctx.keys.network_id,
        "secretariat_emails": []
        if network is None
        else for_role(network.notify_emails, "address", None),
    }
    data: dict[str, Any] = {}
    if request is not None:
        requester = session.get(Organisation, request.requester_org_id)
        holder = session.get(Organisation, request.holder_org_id)
        assert requester is not None and holder is not None
        expires_at = request.due_at + timedelta(days=ctx.policy.disclosure_expiry_days_after_due)
        values.update(
            request_id=request.id,
            requester=_name(requester),
            requester_short=requester.short_name,
            holder=_name(holder),
            holder_short=holder.short_name,
            due_at=request.due_at,
            expires_at=expires_at,
        )
        data.update(
            request_id=request.id,
            requester=requester.short_name,
            holder=holder.short_name,
            due_at=format_time(request.due_at),
            expires_at=format_time(expires_at),
        )
    if member is not None:
        values.update(
            member=_name(member),
            member_short=member.short_name,
            mou_expires_on=member.mou_expires_on,
        )
        data.update(
            member=member.short_name,
            mou_expires_on=None
            if member.mou_expires_on is None
            else member.mou_expires_on.isoformat(),
        )
    for fact in sorted(FACTS.get(event, frozenset())):
        values[fact] = facts.get(fact)
        data[fact] = facts.get(fact)
    return values, data


def notify(
    session: Session,
    ctx: AppContext,
    event: Event | str,
    *,
    request: DisclosureLike | None = None,
    org_id: str | None = None,
    facts: Mapping[str, FactValue] | None = None,
) -> Notification | None:
    """Record `event`'s notification and one delivery per recipient address, in the caller's
    transaction (flushed, never committed). Returns None when this event was recorded before
    (a job run twice, two workers at once): each event is notified once.

    Disclosure events need `request` (the `DisclosureRequest`), MoU events `org_id` (the
    member); audit failures and key rotations take the `facts` their templates name
    (`server.notifications.events.FACTS`) and nothing else.
    """
    event = Event(event)
    given = dict(facts or {})
    unknown = set(given) - FACTS.get(event, frozenset())
    if unknown:
        raise ValueError(f"{event.value} takes no fact {', '.join(sorted(unknown))}")
    if (event in DISCLOSURE_EVENTS) != (request is not None):
        raise ValueError(f"{event.value}: request= is needed for, and only for, disclosure events")
    if (event in MOU_EVENTS) != (org_id is not None):
        raise ValueError(f"{event.value}: org_id= is needed for, and only for, MoU events")
    member = None if org_id is None else session.get(Organisation, org_id)
    if org_id is not None and member is None:
        raise ValueError("no organisation with that id")
    now = ctx.now()
    key = _dedupe_key(event, now, request, member, given)
    if session.scalar(select(Notification.id).where(Notification.dedupe_key == key)) is not None:
        return None
    notification = Notification(
        id=new_id(),
        event=event.value,
        dedupe_key=key,
        request_id=None if request is None else request.id,
        recipients=0,
        created_at=now,
    )
    try:
        # A concurrent transaction that recorded the same event first makes this insert fail
        # (unique key) after waiting for it; the savepoint keeps the caller's transaction.
        with session.begin_nested():
            session.add(notification)
            session.flush()
    except IntegrityError:
        return None
    network = secretariat(session)
    values, data = _values(session, ctx, event, request, member, given, network)
    targets = _targets(session, event, request, member)
    send_email = email_configured(ctx)
    rendered: dict[tuple[str, str], Any] = {}
    for target in targets:
        cache_key = (target.party, target.org.id)
        if cache_key not in rendered:
            rendered[cache_key] = render(
                event,
                {
                    **values,
                    "party": target.party,
                    "recipient_name": target.org.legal_name,
                    "recipient_short": target.org.short_name,
                    "is_secretariat": target.org.org_type == OrgType.NETWORK_SECRETARIAT,
                },
            )
        message = rendered[cache_key]
        delivery_id = new_id()
        if target.channel == Channel.EMAIL:
            body = message.text
            status = DeliveryStatus.PENDING if send_email else DeliveryStatus.NOT_SENT
        else:
            body = webhook_body(
                delivery_id=delivery_id,
                event=event,
                network_id=ctx.keys.network_id,
                created_at=now,
                organisation=target.org.short_name,
                data=data,
                summary=message.summary,
            )
            status = DeliveryStatus.PENDING
        session.add(
            NotificationDelivery(
                id=delivery_id,
                notification_id=notification.id,
                org_id=target.org.id,
                channel=target.channel.value,
                address=target.address,
                status=status.value,
                attempts=0,
                next_attempt_at=now,
                subject=message.subject,
                body=body,
                created_at=now,
            )
        )
    notification.recipients = len(targets)
    session.flush()
    return notification


# --- periodic notices -------------------------------------------------------------------------


def mou_expiry_job(session: Session, ctx: AppContext) -> int:
    """`server.jobs` entry point: tell members (and the secretariat) whose MoU expires within
    `notification_mou_expiry_days`, or has expired, once per expiry date. Returns how many
    notifications were recorded."""
    today = ctx.now().date()
    horizon = today + timedelta(days=ctx.policy.notification_mou_expiry_days)
    members = session.scalars(
        select(Organisation)
        .where(
            Organisation.org_type != OrgType.NETWORK_SECRETARIAT,
            Organisation.status.in_((OrgStatus.ACTIVE, OrgStatus.SUSPENDED)),
            Organisation.mou_expires_on.is_not(None),
            Organisation.mou_expires_on <= horizon,
        )
        .order_by(Organisation.id)
    ).all()
    recorded = 0
    for org in members:
        expires: date | None = org.mou_expires_on
        assert expires is not None
        event = Event.MOU_EXPIRED if expires < today else Event.MOU_EXPIRING
        if notify(session, ctx, event, org_id=org.id) is not None:
            recorded += 1
    return recorded


def prune(session: Session, ctx: AppContext) -> int:
    """Delete notifications older than `notification_retention_days` whose deliveries are all
    finished (sent, undeliverable, not sent); one still being retried is kept."""
    cutoff = ctx.now() - timedelta(days=ctx.policy.notification_retention_days)
    unfinished = select(NotificationDelivery.notification_id).where(
        NotificationDelivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING))
    )
    old = select(Notification.id).where(
        Notification.created_at < cutoff, Notification.id.not_in(unfinished)
    )
    ids = list(session.scalars(old))
    if not ids:
        return 0
    session.execute(
        delete(NotificationDelivery).where(NotificationDelivery.notification_id.in_(ids))
    )
    session.execute(delete(Notification).where(Notification.id.in_(ids)))
    return len(ids)


def notices_job(session: Session, ctx: AppContext) -> None:
    """`server.jobs` entry point: MoU notices, then the outbox's retention."""
    mou_expiry_job(session, ctx)
    prune(session, ctx)


# --- the admin's view -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryView:
    delivery: NotificationDelivery
    event: str
    request_id: str | None
    org_short_name: str


def list_deliveries(
    session: Session,
    *,
    status: str | None = None,
    event: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[DeliveryView], int | None]:
    """Deliveries, newest first (undeliverable ones are what the admin looks for)."""
    stmt = (
        select(
            NotificationDelivery,
            Notification.event,
            Notification.request_id,
            Organisation.short_name,
        )
        .join(Notification, Notification.id == NotificationDelivery.notification_id)
        .join(Organisation, Organisation.id == NotificationDelivery.org_id)
    )
    if status is not None:
        stmt = stmt.where(NotificationDelivery.status == status)
    if event is not None:
        stmt = stmt.where(Notification.event == event)
    stmt = stmt.order_by(NotificationDelivery.created_at.desc(), NotificationDelivery.id)
    rows = session.execute(stmt.limit(limit + 1).offset(offset)).all()
    items = [DeliveryView(d, ev, rid, short) for d, ev, rid, short in rows[:limit]]
    return items, (offset + limit if len(rows) > limit else None)


def unnotified_events(session: Session, *, since: datetime) -> list[Notification]:
    """Events since `since` that reached nobody (no address on record)."""
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.recipients == 0, Notification.created_at >= since)
            .order_by(Notification.created_at.desc())
        )
    )


def counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(NotificationDelivery.status, func.count()).group_by(NotificationDelivery.status)
    )
    return {status: count for status, count in rows}


def retry(
    session: Session,
    ctx: AppContext,
    *,
    delivery_ids: list[str] | None = None,
    statuses: tuple[DeliveryStatus, ...] = (DeliveryStatus.UNDELIVERABLE,),
) -> int:
    """Queue deliveries again with a fresh count of attempts: the given ids, or every one in
    `statuses` (after the mail server or the receiver was fixed, or SMTP was configured).
    Returns how many."""
    stmt = update(NotificationDelivery).where(
        NotificationDelivery.status.in_([s.value for s in statuses])
    )
    if delivery_ids is not None:
        stmt = stmt.where(NotificationDelivery.id.in_(delivery_ids))
    result = session.execute(
        stmt.values(
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=ctx.now(),
            claimed_by=None,
            claimed_until=None,
        ).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
