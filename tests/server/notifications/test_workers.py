"""Two server workers delivering from one database at once never send a message twice (and
between them send every one), on the suite's backend: `FOR UPDATE SKIP LOCKED` on PostgreSQL,
the compare-and-set claim on SQLite. Each worker has its own engine, as a process would."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.app import build_context
from server.context import AppContext
from server.migrate import upgrade
from server.notifications.models import NotificationDelivery
from server.notifications.services import Event, notify
from server.notifications.worker import DeliveryReport, DeliveryWorker
from server.settings import Settings
from tests.databases import dispose_database_url, fresh_database_url
from tests.factories import make_org, make_secretariat
from tests.server.notifications.conftest import MAIL_FROM, HookReceiver, MailServer

pytestmark = pytest.mark.slow

MEMBERS = 8
ADDRESSES = 6


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    url = fresh_database_url(tmp_path, "refcheck_notify")
    try:
        upgrade(url)
        yield url
    finally:
        dispose_database_url(url)


def worker_context(url: str, key_dir: Path, mail: MailServer) -> AppContext:
    settings = Settings(
        environment="test",
        data_dir=key_dir,
        database_url=url,
        run_background_jobs=False,
        smtp_url=SecretStr(mail.url),
        mail_from=MAIL_FROM,
    )
    return build_context(settings)


def test_two_workers_at_once_send_every_message_exactly_once(
    database: str, key_dir: Path, mail: MailServer, hooks: HookReceiver
):
    first = worker_context(database, key_dir, mail)
    second = worker_context(database, key_dir, mail)
    try:
        with first.sessions() as s:
            make_secretariat(
                s,
                notify_emails=[{"address": f"sec{i}@network.example"} for i in range(ADDRESSES)],
            )
            orgs = [
                make_org(
                    s,
                    f"member-{n}",
                    mou_expires_on=first.now().date() + timedelta(days=5),
                    notify_emails=[
                        {"address": f"m{n}-{i}@member.example"} for i in range(ADDRESSES)
                    ],
                    webhooks=[{"url": hooks.url(f"/member-{n}")}],
                )
                for n in range(MEMBERS)
            ]
            s.commit()
            for org in orgs:
                notify(s, first, Event.MOU_EXPIRING, org_id=org.id)
            s.commit()
            total = len(list(s.scalars(select(NotificationDelivery.id))))
        emails = MEMBERS * ADDRESSES * 2
        assert total == emails + MEMBERS

        start = threading.Barrier(2)
        reports: list[DeliveryReport] = []

        def run(ctx: AppContext, name: str) -> None:
            worker = DeliveryWorker(ctx, worker_id=name, batch=4, smtp_timeout=5)
            start.wait()
            reports.append(worker.run_until_idle(max_rounds=500))

        threads = [
            threading.Thread(target=run, args=(ctx, name))
            for ctx, name in ((first, "worker-1"), (second, "worker-2"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert len(reports) == 2, "a worker failed"

        message_ids = Counter(str(m.message["Message-ID"]) for m in mail.messages)
        assert len(message_ids) == emails
        assert set(message_ids.values()) == {1}
        hook_ids = Counter(h.headers["Refcheck-Webhook-Id"] for h in hooks.requests)
        assert len(hook_ids) == MEMBERS and set(hook_ids.values()) == {1}
        assert sum(r.sent for r in reports) == total
        # Both took part (each claims a few at a time), and every row is sent.
        assert all(r.sent > 0 for r in reports)
        with Session(first.sessions.kw["bind"]) as s:
            assert set(s.scalars(select(NotificationDelivery.status))) == {"sent"}
            assert set(s.scalars(select(NotificationDelivery.attempts))) == {1}
    finally:
        for ctx in (first, second):
            ctx.sessions.kw["bind"].dispose()
