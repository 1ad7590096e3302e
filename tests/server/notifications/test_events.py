"""Every event delivers the right message to the right addresses, through a real SMTP server and
a real webhook receiver on 127.0.0.1, and no message carries what it must not."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from client_sdk import WebhookReplayGuard, verify_webhook
from server.context import AppContext
from server.disclosures.deadlines import run_deadlines
from server.notifications.models import NotificationDelivery
from server.notifications.services import Event, mou_expiry_job, notify
from server.stats.models import StatCounter
from tests.factories import AppClient, Network
from tests.server.disclosures.conftest import (
    answer_request,
    match,
    open_request,
    request_under_new_consent,
)
from tests.server.notifications.conftest import (
    HookReceiver,
    MailServer,
    deliver,
    demo_addresses,
    with_mail,
)

pytestmark = pytest.mark.anyio

FOCAL_A, HR_A = "focal-point@org-a.example", "hr@org-a.example"
FOCAL_B, HR_B = "focal-point@org-b.example", "hr@org-b.example"
SECRETARIAT = "secretariat@network.example"


def events_to(mail: MailServer, address: str) -> list[str]:
    return sorted(str(m.message["X-Refcheck-Event"]) for m in mail.to(address))


def message(mail: MailServer, address: str, event: str) -> str:
    [found] = [m for m in mail.to(address) if m.message["X-Refcheck-Event"] == event]
    return found.text


async def test_every_event_reaches_exactly_its_recipients_in_both_languages(
    client: AppClient,
    network: Network,
    ctx: AppContext,
    clock,
    session,
    mail: MailServer,
    hooks: HookReceiver,
):
    with_mail(ctx, mail)
    await demo_addresses(client, network, hooks)
    # Three requests from org-b to org-a about one case: answered, withdrawn, left to expire.
    matched = await match(client, network, clock.today(), max_checks=3)
    answered = await open_request(client, network, matched)
    withdrawn, _ = await request_under_new_consent(client, network, matched)
    unanswered, _ = await request_under_new_consent(client, network, matched)
    await answer_request(client, network, answered)
    response = await client.post(
        f"/v1/disclosure-requests/{withdrawn['id']}/withdraw",
        headers=network.b_hr.headers,
        json={},
    )
    assert response.status_code == 200, response.text
    deliver(ctx)
    due = ctx.now() + timedelta(days=ctx.policy.disclosure_response_deadline_days)
    clock.set(due - timedelta(days=1))
    with ctx.sessions() as s:
        run_deadlines(s, ctx)
        s.commit()
    clock.set(due + timedelta(hours=1))
    with ctx.sessions() as s:
        run_deadlines(s, ctx)
        s.commit()
    clock.set(due + timedelta(days=ctx.policy.disclosure_expiry_days_after_due, hours=2))
    with ctx.sessions() as s:
        run_deadlines(s, ctx)
        # org-a's MoU expires within the notice period, org-b's expired yesterday.
        for org, expires in ((network.org_a, 10), (network.org_b, -1)):
            row = s.get(type(org), org.id)
            assert row is not None
            row.mou_expires_on = clock.today() + timedelta(days=expires)
        s.flush()
        mou_expiry_job(s, ctx)
        notify(s, ctx, Event.AUDIT_VERIFICATION_FAILED, facts={"problem": "altered", "entry": 7})
        notify(s, ctx, Event.KEY_ROTATED, facts={"key_seq": 2, "key_id": "0123456789abcdef"})
        s.commit()
    report = deliver(ctx)
    assert report.undeliverable == 0 and report.retrying == 0

    # The right addresses, and nobody else.
    assert events_to(mail, FOCAL_A) == sorted(
        [
            "disclosure.requested",
            "disclosure.requested",
            "disclosure.requested",
            "disclosure.due_soon",
            "disclosure.overdue",
            "mou.expiring",
        ]
    )
    assert events_to(mail, HR_B) == sorted(
        ["disclosure.answered", "disclosure.withdrawn", "disclosure.expired", "mou.expired"]
    )
    assert events_to(mail, HR_A) == ["mou.expiring"]
    assert events_to(mail, FOCAL_B) == ["mou.expired"]
    assert events_to(mail, SECRETARIAT) == sorted(
        [
            "disclosure.overdue",
            "mou.expiring",
            "mou.expired",
            "audit.verification_failed",
            "keys.rotated",
        ]
    )
    assert all(len(m.to) == 1 for m in mail.messages)

    # What a message says: the request, both organisations, the due date, the next command,
    # both languages and the footer; nothing about the applicant or the case.
    requested = [
        m.text for m in mail.to(FOCAL_A) if m.message["X-Refcheck-Event"] == "disclosure.requested"
    ]
    assert len(requested) == 3
    text = next(t for t in requested if answered["id"] in t)
    assert "ORG-B Humanitarian Foundation (org-b)" in text and "(org-a)" in text
    assert f"refcheck disclosures answer {answered['id']}" in text
    assert "[Bahasa Indonesia]" in text and "[English]" in text
    assert text.index("[Bahasa Indonesia]") < text.index("[English]")
    assert "Batas waktu jawaban" in text and "Answer by" in text
    assert "pukul" in text and "UTC" in text
    assert "focal point PSEAH organisasi Anda" in text and "secretariat@network.example" in text
    assert "refcheck admin org update org-a --notify-email" in text
    for secret in (
        matched.case["id"],
        matched.consent_id,
        matched.body()["entry_id"],
        "Siti",
        "Rahmawati",
        "sexual",
        "seksual",
        "1988",
    ):
        for received in mail.messages:
            assert secret not in received.text, (secret, received.message["Subject"])
            assert secret not in str(received.message["Subject"])

    answer_text = message(mail, HR_B, "disclosure.answered")
    assert f"refcheck disclosures show {answered['id']}" in answer_text
    assert "refcheck disclosures outcome" in answer_text
    overdue_sec = message(mail, SECRETARIAT, "disclosure.overdue")
    assert "refcheck disclosures list --overdue" in overdue_sec
    assert "admin jaringan" in overdue_sec  # the secretariat's footer
    assert "entri 7" in message(mail, SECRETARIAT, "audit.verification_failed")
    assert "key_seq 2" in message(mail, SECRETARIAT, "keys.rotated")
    expiring = message(mail, FOCAL_A, "mou.expiring")
    assert "--mou-expires-on" not in expiring  # the member is told whom to ask, not the command
    assert "--mou-expires-on" in message(mail, SECRETARIAT, "mou.expiring")

    # Headers: a stable Message-ID per delivery, machine-generated, both languages.
    ids = {str(m.message["Message-ID"]) for m in mail.messages}
    assert len(ids) == len(mail.messages)
    first = mail.to(HR_B)[0].message
    assert str(first["Message-ID"]).endswith("@network.example>")
    assert first["Auto-Submitted"] == "auto-generated"
    assert " / " in str(first["Subject"])

    # Webhooks: org-a's (focal point) got the requests and reminders, org-b's (HR) the answers;
    # each verifies against the network signing key.
    guard = WebhookReplayGuard()
    key = ctx.keys.audit_public
    org_a = [
        verify_webhook(
            h.headers,
            h.body,
            signing_public_key=key,
            replay_guard=guard,
            now=ctx.now().timestamp(),
            tolerance_seconds=10**9,
        )
        for h in hooks.at("/org-a")
    ]
    assert sorted(e.type for e in org_a) == sorted(
        [
            "disclosure.requested",
            "disclosure.requested",
            "disclosure.requested",
            "disclosure.due_soon",
            "disclosure.overdue",
            "mou.expiring",
        ]
    )
    org_b = [json.loads(h.body) for h in hooks.at("/org-b")]
    assert sorted(d["type"] for d in org_b) == sorted(
        ["disclosure.answered", "disclosure.withdrawn", "disclosure.expired", "mou.expired"]
    )
    answered_hook = next(d for d in org_b if d["type"] == "disclosure.answered")
    assert answered_hook["organisation"] == "org-b"
    assert answered_hook["data"]["request_id"] == answered["id"]
    assert answered_hook["data"]["holder"] == "org-a"
    assert set(answered_hook["summary"]) == {"id", "en"}
    assert not set(answered_hook["data"]) & {"case_id", "consent_id", "entry_id", "category"}

    # Everything sent, and counted for the organisation whose address it was.
    statuses = set(session.scalars(select(NotificationDelivery.status)))
    assert statuses == {"sent"}

    # (Read from the counters: the clock crossed months, maybe a year.)
    def counted(name: str) -> int:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(StatCounter.value), 0)).where(
                    StatCounter.org_id == network.org_a.id, StatCounter.name == name
                )
            )
        )

    # org-a: 6 e-mails to its focal point, 1 to HR, 6 webhooks.
    assert counted("notifications_delivered") == 13
    assert counted("notification_attempts") == 13
    assert counted("notifications_undeliverable") == 0
