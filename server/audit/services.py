"""Recording what callers do, and reading the trail back.

Every state change and every check goes through `record`, in the same transaction as the change,
so the change and its audit entry commit together or not at all. Signed tree heads over the
trail are the sealer's (`server.transparency.sealer`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from server.audit.chain import append
from server.audit.models import AuditEntry
from server.auth.tokens import Caller
from server.context import AppContext
from server.db import Begin, bind_for
from server.errors import DomainError
from server.paging import split_page

#: Largest page `GET /v1/audit` returns.
MAX_PAGE = 1000


def record(
    session: Session,
    ctx: AppContext,
    caller: Caller | None,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an audit entry in the caller's transaction (`caller=None`: the system itself).

    `details` holds counts, states, field names and ids of our own rows (consent id, case id);
    never a pseudonym, bucket, key value or anything about a person.
    """
    return append(
        session,
        at=ctx.now(),
        action=action,
        actor_principal_id=caller.principal_id if caller else None,
        actor_org_id=caller.org_id if caller else None,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )


def refusal_details(refusal: DomainError, **counts: int | str) -> dict[str, Any]:
    """The details of a refusal's audit entry (`check.refused`, `oprf.refused`): the problem
    slug, the policy rule when there is one, and the caller's `counts`; nothing of the request."""
    details: dict[str, Any] = {"problem": refusal.slug, **counts}
    rule = refusal.extra.get("rule")
    if isinstance(rule, str):
        details["rule"] = rule
    return details


def list_entries(session: Session, *, after_seq: int, limit: int) -> list[AuditEntry]:
    limit = max(1, min(limit, MAX_PAGE))
    query = (
        select(AuditEntry).where(AuditEntry.seq > after_seq).order_by(AuditEntry.seq).limit(limit)
    )
    return list(session.scalars(query))


def page_entries(
    session: Session, *, after_seq: int, limit: int
) -> tuple[list[AuditEntry], int | None]:
    """One page of `GET /v1/audit` and the `after_seq` of the next one (None on the last page,
    also when the last page is exactly full: `server.paging`)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = (
        select(AuditEntry)
        .where(AuditEntry.seq > after_seq)
        .order_by(AuditEntry.seq)
        .limit(limit + 1)
    )
    entries, more = split_page(list(session.scalars(query)), limit)
    return entries, entries[-1].seq if more else None


def iter_batches(
    session: Session, *, after_seq: int = 0, batch: int = 500
) -> Iterator[list[AuditEntry]]:
    """Every entry after `after_seq` in order, in batches, so an export never holds the whole
    trail. Batches already handed out are expunged: the session does not keep them either."""
    last = after_seq
    while True:
        page = list_entries(session, after_seq=last, limit=batch)
        if not page:
            return
        yield page
        last = page[-1].seq
        for entry in page:
            session.expunge(entry)


def iter_entries(session: Session, *, after_seq: int = 0, batch: int = 500) -> Iterator[AuditEntry]:
    """Every entry in order, read in batches so an export never holds the whole trail."""
    for page in iter_batches(session, after_seq=after_seq, batch=batch):
        yield from page


def export_session(ctx: AppContext) -> Session:
    """A session for reading the whole trail as of one moment, without blocking anybody.

    SQLite: a read transaction (no lock in WAL mode) keeps its snapshot until it ends.
    PostgreSQL: REPEATABLE READ, READ ONLY gives one snapshot for every batch; plain reads
    take no locks that a writer waits for.
    """
    bind = bind_for(ctx.sessions.kw["bind"], Begin.READ)
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        bind = bind.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return ctx.sessions(bind=bind)
