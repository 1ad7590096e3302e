"""The outbox loses nothing: SMTP down, a receiver failing, a worker dying mid-send; gives up
after the policy's maximum attempts, visibly; retries on request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from client_sdk import WebhookReplayed, WebhookReplayGuard, WebhookSignatureInvalid, verify_webhook
from server.context import AppContext
from server.notifications.models import DeliveryStatus, NotificationDelivery
from server.notifications.outbox import backoff, claim
from server.notifications.services import Event, notify, retry
from server.notifications.worker import DeliveryWorker
from tests.factories import AppClient, Network
from tests.server.notifications.conftest import (
    HookReceiver,
    MailServer,
    deliver,
    set_addresses,
    with_mail,
)

pytestmark = pytest.mark.anyio

ADDRESSES = [f"secretariat-{i}@network.example" for i in range(3)]


async def secretariat_addresses(client: AppClient, network: Network, **extra) -> None:
    await set_addresses(
        client,
        network,
        network.secretariat.id,
        emails=[{"address": a} for a in ADDRESSES],
        **extra,
    )


def rotated(ctx: AppContext, seq: int) -> None:
    with ctx.sessions() as s:
        notify(s, ctx, Event.KEY_ROTATED, facts={"key_seq": seq, "key_id": f"{seq:016x}"})
        s.commit()


def deliveries(session: Session) -> list[NotificationDelivery]:
    session.expire_all()
    return list(session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def test_back_off_doubles_from_the_base_up_to_the_maximum():
    assert [backoff(60, 600, n).total_seconds() for n in range(1, 7)] == [
        60,
        120,
        240,
        480,
        600,
        600,
    ]


async def test_while_smtp_is_down_nothing_is_lost_and_all_arrives_once_it_is_back(
    client, network, ctx, clock, session, mail: MailServer
):
    with_mail(ctx, mail)
    await secretariat_addresses(client, network)
    mail.stop()
    rotated(ctx, 2)
    rotated(ctx, 3)
    for attempt in (1, 2, 3):
        report = deliver(ctx)
        assert report.sent == 0 and report.retrying == 6 and report.undeliverable == 0
        rows = deliveries(session)
        assert {r.status for r in rows} == {"pending"}
        assert {r.attempts for r in rows} == {attempt}
        assert all(r.last_error for r in rows)
        # Nothing is tried again before its back-off has passed.
        assert deliver(ctx).claimed == 0
        clock.advance(backoff(60, 21600, attempt) + timedelta(seconds=1))
    mail.start()
    report = deliver(ctx)
    assert report.sent == 6
    assert sorted(a for m in mail.messages for a in m.to) == sorted(ADDRESSES * 2)
    assert {r.status for r in deliveries(session)} == {"sent"}
    assert deliver(ctx).claimed == 0  # and nothing twice
    assert len(mail.messages) == 6


async def test_after_the_maximum_attempts_a_delivery_is_undeliverable_and_listed_for_the_admin(
    client, network, ctx, clock, session, mail: MailServer
):
    with_mail(ctx, mail)
    ctx.policy = ctx.policy.model_copy(update={"notification_max_attempts": 2})
    await secretariat_addresses(client, network)
    mail.stop()
    rotated(ctx, 2)
    assert deliver(ctx).retrying == 3
    clock.advance(minutes=5)
    assert deliver(ctx).undeliverable == 3
    clock.advance(days=30)
    assert deliver(ctx).claimed == 0  # given up: no more attempts
    await network.admin.refresh(client)
    response = await client.get(
        "/v1/notifications", params={"status": "undeliverable"}, headers=network.admin.headers
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert sorted(i["address"] for i in items) == ADDRESSES
    assert all(i["attempts"] == 2 and i["event"] == "keys.rotated" for i in items)
    assert all(i["last_error"] for i in items)
    # The admin's retry, once the mail server is back: every one arrives.
    mail.start()
    with ctx.sessions() as s:
        assert retry(s, ctx) == 3
        s.commit()
    assert deliver(ctx).sent == 3
    assert len(mail.messages) == 3


async def test_a_recipient_the_mail_server_refuses_for_good_is_undeliverable_at_once(
    client, network, ctx, session, mail: MailServer
):
    with_mail(ctx, mail)
    await secretariat_addresses(client, network)
    mail.refuse.add(ADDRESSES[0])
    rotated(ctx, 2)
    report = deliver(ctx)
    assert report.sent == 2 and report.undeliverable == 1
    [refused] = [r for r in deliveries(session) if r.address == ADDRESSES[0]]
    assert refused.status == "undeliverable" and refused.attempts == 1
    assert refused.last_error is not None and "550" in refused.last_error


async def test_without_smtp_e_mails_are_recorded_as_not_sent_and_queued_once_it_is_set(
    client, network, ctx, session, mail: MailServer
):
    await secretariat_addresses(client, network)
    rotated(ctx, 2)
    assert deliver(ctx).claimed == 0
    assert {r.status for r in deliveries(session)} == {"not_sent"}
    with_mail(ctx, mail)
    with ctx.sessions() as s:
        assert retry(s, ctx, statuses=(DeliveryStatus.NOT_SENT,)) == 3
        s.commit()
    assert deliver(ctx).sent == 3


async def test_a_worker_that_dies_mid_send_is_taken_over_after_its_lease(
    client, network, ctx, clock, session, mail: MailServer
):
    with_mail(ctx, mail)
    await secretariat_addresses(client, network)
    rotated(ctx, 2)
    dead = DeliveryWorker(ctx, worker_id="dead")
    with ctx.sessions() as s:
        assert len(claim(s, ctx, "dead", limit=10, lease=dead.lease)) == 3
        s.commit()
    # Within the lease nobody else takes them.
    assert deliver(ctx).claimed == 0
    clock.advance(dead.lease + timedelta(seconds=1))
    assert deliver(ctx).sent == 3
    rows = deliveries(session)
    assert {r.status for r in rows} == {"sent"} and {r.attempts for r in rows} == {2}


async def test_webhooks_are_signed_retried_with_the_same_id_and_refused_when_replayed_or_forged(
    client, network, ctx, clock, session, hooks: HookReceiver
):
    await set_addresses(
        client, network, network.secretariat.id, webhooks=[{"url": hooks.url("/sec")}]
    )
    hooks.status = 503
    rotated(ctx, 2)
    assert deliver(ctx).retrying == 1
    clock.advance(minutes=2)
    hooks.status = 200
    assert deliver(ctx).sent == 1
    first, second = hooks.requests
    assert first.headers["Refcheck-Webhook-Id"] == second.headers["Refcheck-Webhook-Id"]
    assert first.body == second.body
    assert (
        first.headers["Refcheck-Webhook-Timestamp"] != second.headers["Refcheck-Webhook-Timestamp"]
    )
    guard = WebhookReplayGuard(clock=lambda: ctx.now().timestamp())
    now = ctx.now().timestamp()
    key = ctx.keys.audit_public
    event = verify_webhook(
        second.headers, second.body, signing_public_key=key, replay_guard=guard, now=now
    )
    assert event.type == "keys.rotated" and event.data == {
        "key_id": "0000000000000002",
        "key_seq": 2,
    }
    with pytest.raises(WebhookReplayed):
        verify_webhook(
            second.headers, second.body, signing_public_key=key, replay_guard=guard, now=now
        )
    forged = second.body.replace(b"keys.rotated", b"mou.expired!")
    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook(second.headers, forged, signing_public_key=key, replay_guard=guard, now=now)


async def test_an_event_is_recorded_once_even_when_notified_twice(client, network, ctx, session):
    await secretariat_addresses(client, network)
    rotated(ctx, 2)
    rotated(ctx, 2)
    assert len(deliveries(session)) == 3


async def test_an_event_nobody_has_an_address_for_is_still_recorded(ctx, network, session):
    from server.notifications.models import Notification

    with ctx.sessions() as s:
        recorded = notify(s, ctx, Event.KEY_ROTATED, facts={"key_seq": 9, "key_id": "x"})
        s.commit()
    assert recorded is not None
    row = session.get(Notification, recorded.id)
    assert row is not None and row.recipients == 0
