"""`refcheck-server notifications`: what was notified, what could not be delivered, and retries.

    refcheck-server notifications list [--status undeliverable] [--event disclosure.requested]
    refcheck-server notifications retry --undeliverable | --not-sent | ID...
    refcheck-server notifications deliver        # one delivery run now (no background jobs)

Without `REFCHECK_SMTP_URL` e-mails are recorded as `not_sent` and listed here; `retry
--not-sent` queues them once SMTP is configured. `server.cli` mounts `notifications_app`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from server.cli_common import DataDirOption, fail, open_context, session_scope

notifications_app = typer.Typer(
    help="E-mail and webhook notifications: list, retry, deliver.", no_args_is_help=True
)


@notifications_app.command("list")
def notifications_list(
    data_dir: DataDirOption = None,
    status: Annotated[
        str | None,
        typer.Option(help="pending, sending, sent, undeliverable or not_sent."),
    ] = None,
    event: Annotated[str | None, typer.Option(help="e.g. disclosure.requested.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Deliveries, newest first, and how many there are in each state."""
    from server.notifications.events import Event
    from server.notifications.models import DeliveryStatus
    from server.notifications.routes import delivery_out
    from server.notifications.services import counts_by_status, email_configured, list_deliveries

    if status is not None and status not in {s.value for s in DeliveryStatus}:
        fail(f"unknown status {status!r}", 2)
    if event is not None and event not in {e.value for e in Event}:
        fail(f"unknown event {event!r}", 2)
    ctx = open_context(data_dir)
    with session_scope(ctx) as session:
        views, _ = list_deliveries(session, status=status, event=event, limit=limit)
        items = [delivery_out(v).model_dump(mode="json") for v in views]
        counts = counts_by_status(session)
    if json_output:
        typer.echo(json.dumps({"counts": counts, "items": items}, indent=2))
        return
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"
    typer.echo(f"deliveries by status: {summary}")
    if not email_configured(ctx):
        typer.echo("e-mail is not sent: REFCHECK_SMTP_URL and REFCHECK_MAIL_FROM are not set")
    for item in items:
        line = (
            f"{item['created_at']}  {item['status']:<13} {item['event']:<26} "
            f"{item['org']:<16} {item['channel']:<7} {item['address']}  "
            f"attempts {item['attempts']}"
        )
        if item["request_id"]:
            line += f"  request {item['request_id']}"
        if item["last_error"]:
            line += f"  last error: {item['last_error']}"
        typer.echo(line)


@notifications_app.command("retry")
def notifications_retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Delivery ids.")] = None,
    data_dir: DataDirOption = None,
    undeliverable: Annotated[
        bool, typer.Option("--undeliverable", help="Every undeliverable delivery.")
    ] = False,
    not_sent: Annotated[
        bool, typer.Option("--not-sent", help="Every e-mail recorded while SMTP was not set.")
    ] = False,
) -> None:
    """Queue deliveries again, with a fresh count of attempts."""
    from server.notifications.models import DeliveryStatus
    from server.notifications.services import retry

    statuses: tuple[DeliveryStatus, ...] = ()
    if undeliverable:
        statuses += (DeliveryStatus.UNDELIVERABLE,)
    if not_sent:
        statuses += (DeliveryStatus.NOT_SENT,)
    if not ids and not statuses:
        fail("name delivery ids, or --undeliverable and/or --not-sent", 2)
    ctx = open_context(data_dir)
    with session_scope(ctx) as session:
        count = retry(
            session,
            ctx,
            delivery_ids=list(ids) if ids else None,
            statuses=statuses or (DeliveryStatus.UNDELIVERABLE, DeliveryStatus.NOT_SENT),
        )
    typer.echo(f"{count} deliver{'y' if count == 1 else 'ies'} queued again")


@notifications_app.command("deliver")
def notifications_deliver(data_dir: DataDirOption = None) -> None:
    """Deliver what is due now, once (the server does this on its own every few seconds)."""
    from server.notifications.worker import DeliveryWorker

    ctx = open_context(data_dir)
    report = DeliveryWorker(ctx).run_until_idle()
    typer.echo(
        f"{report.sent} sent, {report.retrying} to retry, {report.undeliverable} undeliverable"
    )
