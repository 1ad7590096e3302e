"""The periodic jobs: each in its own transaction, a failure contained, the log's seal last."""

from __future__ import annotations

import logging
import threading

import anyio
import pytest
from sqlalchemy import func, select

import server.jobs
from server.app import create_app
from server.audit.services import record
from server.auth.models import UsedAssertion
from server.jobs import PERIODIC_JOBS, PeriodicJob, run_jobs_once
from server.transparency.models import TreeHead


def _checkpoints(session) -> int:
    return session.scalar(select(func.count()).select_from(TreeHead)) or 0


def test_a_failing_job_neither_stops_the_others_nor_leaves_its_changes(
    session, ctx, caplog: pytest.LogCaptureFixture
):
    def half_done_then_fail(s, c) -> None:
        record(s, c, None, "test.half-done")
        raise RuntimeError("secret detail 3201234567890001")

    checkpoint_job = next(j for j in PERIODIC_JOBS if j.name == "audit-checkpoint")
    before = _checkpoints(session)
    caplog.set_level(logging.ERROR)
    results = run_jobs_once(ctx, [checkpoint_job, PeriodicJob("broken", half_done_then_fail)])
    assert results == {"broken": False, "audit-checkpoint": True}
    session.expire_all()
    from server.audit.models import AuditEntry

    actions = session.scalars(select(AuditEntry.action)).all()
    assert "test.half-done" not in actions
    assert "periodic job broken failed: RuntimeError" in caplog.text
    assert "3201234567890001" not in caplog.text
    # The checkpoint ran after the broken job although it was listed first.
    assert _checkpoints(session) == before + 1


@pytest.mark.anyio
async def test_prune_job_forgets_expired_assertions(network, session, ctx, clock):
    assert session.scalar(select(func.count()).select_from(UsedAssertion))
    prune = next(j for j in PERIODIC_JOBS if j.name == "prune-used-assertions")
    clock.advance(minutes=10)
    assert run_jobs_once(ctx, [prune]) == {"prune-used-assertions": True}
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(UsedAssertion)) == 0


@pytest.mark.anyio
async def test_server_runs_the_jobs_in_the_background_while_it_serves(
    settings, connection, clock, session, monkeypatch: pytest.MonkeyPatch
):
    checkpoint_job = next(j for j in PERIODIC_JOBS if j.name == "audit-checkpoint")
    background = settings.model_copy(update={"run_background_jobs": True})
    app = create_app(background, bind=connection, clock=clock)
    record(session, app.state.ctx, None, "test.event")
    session.commit()
    before = _checkpoints(session)
    # The app's background threads share this test's one connection, so the test reads it
    # only once a round of jobs has committed and the server has stopped (reading it while a
    # job used it broke the connection's transaction on PostgreSQL, now and then).
    rounds = threading.Event()

    def run_and_signal(ctx, jobs=None):
        results = run_jobs_once(ctx, jobs)
        rounds.set()
        return results

    monkeypatch.setattr(server.jobs, "run_jobs_once", run_and_signal)
    # Only the checkpoint job: the others belong to other domains' tests.
    saved = list(PERIODIC_JOBS)
    PERIODIC_JOBS[:] = [checkpoint_job]
    try:
        async with app.router.lifespan_context(app):
            with anyio.fail_after(10):
                while not rounds.is_set():
                    await anyio.sleep(0.05)
    finally:
        PERIODIC_JOBS[:] = saved
    session.expire_all()
    assert _checkpoints(session) > before
