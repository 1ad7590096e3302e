"""The delivery worker: runs in every server process, sends what the outbox holds.

    worker = DeliveryWorker(ctx)
    worker.run_once()                      # claim, send, record; what tests and the CLI call
    await run_delivery_worker(ctx)         # forever, every `notification_poll_seconds`

Each round claims a batch (`server.notifications.outbox.claim`) in one short transaction, sends
each delivery outside any transaction, and records each result in a transaction of its own, so a
crash loses at most the record of one sending (the lease then hands it to another worker).
E-mails are claimed only when SMTP is configured: without it they stay `not_sent`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import httpx
from anyio import to_thread

from server.context import AppContext
from server.db import transaction
from server.notifications import smtp, webhook
from server.notifications.errors import SendFailed
from server.notifications.models import Channel, DeliveryStatus
from server.notifications.outbox import Claimed, claim, record_failure, record_sent
from server.notifications.services import email_configured

log = logging.getLogger("refcheck.server.notifications")


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    undeliverable: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_email(ctx: AppContext, claimed: Claimed) -> EmailMessage:
    """The e-mail of a delivery. Its Message-ID is the delivery's id, so every retry is the
    same message to the receiving system and a duplicate can be recognised."""
    mail_from = ctx.settings.mail_from
    domain = smtp.mail_from_address(mail_from).rpartition("@")[2]
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = claimed.address
    message["Subject"] = claimed.subject
    message["Date"] = format_datetime(claimed.created_at)
    message["Message-ID"] = f"<{claimed.id}@{domain}>"
    # RFC 3834: machine-generated; autoresponders (out-of-office) must not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "id, en"
    message["X-Refcheck-Event"] = claimed.event
    message.set_content(claimed.body, charset="utf-8")
    return message


class DeliveryWorker:
    """One worker's sender. `webhook_transport` is for tests (an httpx transport)."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        worker_id: str | None = None,
        batch: int = 20,
        smtp_timeout: float = 20.0,
        webhook_timeout: float = 10.0,
        webhook_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.ctx = ctx
        self.worker_id = worker_id or new_worker_id()
        self.batch = batch
        self.smtp_timeout = smtp_timeout
        self.webhook_timeout = webhook_timeout
        self.webhook_transport = webhook_transport

    @property
    def lease(self) -> timedelta:
        # Longer than a whole batch can take, so no other worker takes a row still being sent.
        return timedelta(seconds=self.batch * max(self.smtp_timeout, self.webhook_timeout) + 60)

    def run_once(self) -> DeliveryReport:
        """One round: claim a batch, send it, record each result."""
        ctx = self.ctx
        channels = (Channel.EMAIL, Channel.WEBHOOK) if email_configured(ctx) else (Channel.WEBHOOK,)
        with transaction(ctx.sessions) as session:
            batch = claim(
                session, ctx, self.worker_id, limit=self.batch, lease=self.lease, channels=channels
            )
        report = DeliveryReport(claimed=len(batch))
        for claimed in batch:
            try:
                self._send(claimed)
            except SendFailed as exc:
                report.errors[exc.reason] = report.errors.get(exc.reason, 0) + 1
                with transaction(ctx.sessions) as session:
                    status = record_failure(
                        session, ctx, self.worker_id, claimed, exc.reason, permanent=exc.permanent
                    )
                if status == DeliveryStatus.UNDELIVERABLE:
                    report.undeliverable += 1
                    log.warning(
                        "notification %s undeliverable after %d attempt(s): %s",
                        claimed.id,
                        claimed.attempts,
                        exc.reason,
                    )
                else:
                    report.retrying += 1
                continue
            with transaction(ctx.sessions) as session:
                record_sent(session, ctx, self.worker_id, claimed)
            report.sent += 1
        return report

    def run_until_idle(self, *, max_rounds: int = 100) -> DeliveryReport:
        """Rounds until one claims nothing (tests, the CLI's `notifications deliver`)."""
        total = DeliveryReport()
        for _ in range(max_rounds):
            report = self.run_once()
            if report.claimed == 0:
                break
            total.claimed += report.claimed
            total.sent += report.sent
            total.retrying += report.retrying
            total.undeliverable += report.undeliverable
            for reason, count in report.errors.items():
                total.errors[reason] = total.errors.get(reason, 0) + count
        return total

    def _send(self, claimed: Claimed) -> None:
        ctx = self.ctx
        if claimed.channel == Channel.EMAIL:
            config = smtp.parse_smtp_url(ctx.settings.smtp_url.get_secret_value())
            smtp.send_message(config, build_email(ctx, claimed), timeout=self.smtp_timeout)
            return
        webhook.post(
            claimed.address,
            claimed.id,
            claimed.body,
            key=ctx.keys.signing_key,
            timestamp=int(ctx.now().timestamp()),
            environment=ctx.settings.environment,
            timeout=self.webhook_timeout,
            transport=self.webhook_transport,
        )


async def run_delivery_worker(ctx: AppContext) -> None:
    """Deliver forever: a round every `notification_poll_seconds`, at once again after a full
    batch. Started beside the periodic jobs in every server process (`server.app`)."""
    worker = DeliveryWorker(ctx)
    while True:
        try:
            report = await to_thread.run_sync(worker.run_once)
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the worker
            log.error("notification delivery round failed: %s", type(exc).__name__)
            report = DeliveryReport()
        if report.claimed < worker.batch:
            await asyncio.sleep(ctx.settings.notification_poll_seconds)
