"""Publications by several workers at once (each worker runs the job; the CLI may run too) take
turns on the filter head: distinct, contiguous, chained revisions, and a due publication made
once however many workers find it due.

Like the other race tests, these need transactions that really run at the same time, so they
use the session's engine with their own connections (not the per-test rolled-back one) and
delete what they committed afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from protocol.signed import parse
from server.audit.models import AuditEntry
from server.context import AppContext
from server.db import make_session_factory, transaction, utcnow
from server.filter import services
from server.filter.models import FilterHead, FilterRevision
from server.keys import ServerKeys
from server.oprf.models import CurrentOprfKey, OprfKeyAnnouncement
from server.policy.schema import load_policy
from server.settings import Settings

WORKERS = 4


@pytest.fixture
def worker_ctx(engine: Engine, settings: Settings, server_keys: ServerKeys) -> Iterator[AppContext]:
    ctx = AppContext(
        settings=settings,
        sessions=make_session_factory(engine),
        policy=load_policy(settings.policy_file).model_copy(
            update={"filter_publish_seconds": 3600}
        ),
        keys=server_keys,
        clock=utcnow,
    )
    try:
        yield ctx
    finally:
        # Publishing also announces the first key and logs each header: committed for real
        # here, so removed with the revisions, or later tests would find another key in force.
        with transaction(ctx.sessions) as session:
            session.execute(delete(FilterRevision))
            session.execute(delete(FilterHead))
            session.execute(delete(CurrentOprfKey))
            session.execute(delete(OprfKeyAnnouncement))
            session.execute(delete(AuditEntry))


def at_once(ctx: AppContext, work: Callable[[Session, AppContext], object]) -> list[str]:
    """Run `work` in `WORKERS` transactions started together; the errors' class names."""
    barrier = threading.Barrier(WORKERS)
    errors: list[str] = []

    def worker() -> None:
        barrier.wait()
        try:
            with transaction(ctx.sessions) as session:
                work(session, ctx)
        except Exception as exc:  # noqa: BLE001 - reported to the test below
            errors.append(type(exc).__name__)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def revisions(ctx: AppContext) -> list[FilterRevision]:
    with ctx.sessions() as session:
        return list(session.scalars(select(FilterRevision).order_by(FilterRevision.revision)))


def test_publications_at_once_get_distinct_chained_revisions(worker_ctx: AppContext):
    assert at_once(worker_ctx, services.publish) == []
    rows = revisions(worker_ctx)
    assert [row.revision for row in rows] == list(range(1, WORKERS + 1))
    previous = "0" * 64
    for row in rows:
        assert parse(row.header).fields["prev_sha256"] == previous
        previous = row.sha256


def test_a_due_publication_is_made_once_by_workers_that_all_find_it_due(
    worker_ctx: AppContext,
):
    assert at_once(worker_ctx, services.publication_job) == []
    assert [row.revision for row in revisions(worker_ctx)] == [1]
