"""Periodic jobs the server runs in-process while it serves (one list, like `server.routers`).

Each job runs in its own transaction, so one failing job neither blocks the others nor leaves a
half-done change. Other domains append their job to `PERIODIC_JOBS`::

    from server.jobs import PERIODIC_JOBS, PeriodicJob
    PERIODIC_JOBS.append(PeriodicJob("retention-sweep", sweep))   # sweep(session, ctx) -> None

A job receives the session and the `AppContext`; it must not commit (the runner does) and must be
safe to run again after a crash (it may be interrupted half-way and retried next interval).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from anyio import to_thread
from sqlalchemy.orm import Session

from server.context import AppContext
from server.db import transaction

log = logging.getLogger("refcheck.server.jobs")

JobFunction = Callable[[Session, AppContext], None]


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    run: JobFunction


def _prune_assertions(session: Session, ctx: AppContext) -> None:
    from server.auth.services import prune_used_assertions

    prune_used_assertions(session, ctx.now())


def _retention_sweep(session: Session, ctx: AppContext) -> None:
    from server.retention.services import sweep_job

    sweep_job(session, ctx)


def _disclosure_deadlines(session: Session, ctx: AppContext) -> None:
    from server.disclosures.deadlines import deadline_job

    deadline_job(session, ctx)


def _notification_notices(session: Session, ctx: AppContext) -> None:
    from server.notifications.services import notices_job

    notices_job(session, ctx)


def _filter_publication(session: Session, ctx: AppContext) -> None:
    from server.filter.services import publication_job

    publication_job(session, ctx)


def _oprf_key_rotation(session: Session, ctx: AppContext) -> None:
    from server.oprf.rotation import rotation_job

    rotation_job(session, ctx)


def _checkpoint(session: Session, ctx: AppContext) -> None:
    # The sealer also runs on its own, every `audit_seal_interval_seconds` (server.app); here
    # it seals what the jobs before it recorded.
    from server.transparency.sealer import seal

    seal(session, ctx)


PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob("prune-used-assertions", _prune_assertions),
    PeriodicJob("retention-sweep", _retention_sweep),
    PeriodicJob("disclosure-deadlines", _disclosure_deadlines),
    PeriodicJob("notification-notices", _notification_notices),
    # After the sweep, so what it deleted has left the revision it publishes.
    PeriodicJob("filter-publication", _filter_publication),
    PeriodicJob("oprf-key-rotation", _oprf_key_rotation),
    # Last, so the signed tree head also covers whatever the jobs before it recorded.
    PeriodicJob("audit-checkpoint", _checkpoint),
]


def run_jobs_once(ctx: AppContext, jobs: list[PeriodicJob] | None = None) -> dict[str, bool]:
    """Run every job once; return which succeeded. Failures are logged by class name only,
    because exception messages from lower layers may carry data we must not log."""
    # The checkpoint job is kept last whatever other domains appended after it.
    ordered = sorted(jobs if jobs is not None else PERIODIC_JOBS, key=_checkpoint_last)
    results: dict[str, bool] = {}
    for job in ordered:
        try:
            with transaction(ctx.sessions) as session:
                job.run(session, ctx)
            results[job.name] = True
        except Exception as exc:  # noqa: BLE001 - one failing job must not stop the others
            log.error("periodic job %s failed: %s", job.name, type(exc).__name__)
            results[job.name] = False
    return results


def _checkpoint_last(job: PeriodicJob) -> int:
    return 1 if job.run is _checkpoint else 0


async def run_periodically(ctx: AppContext, interval_seconds: float) -> None:
    """Run the jobs now and then every `interval_seconds`, in a worker thread (they block)."""
    while True:
        await to_thread.run_sync(run_jobs_once, ctx)
        await asyncio.sleep(interval_seconds)
