"""The FastAPI application factory.

`create_app` takes its settings (and optionally an engine or connection and a clock) as arguments,
so tests run the real app against a real database without touching globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Connection

from server import problems
from server.admission import Admission, AdmissionMiddleware
from server.auth.deps import org_of_bearer
from server.checks.pacing import CheckPacing
from server.context import AppContext, Clock
from server.db import engine_arguments, make_engine, make_session_factory, utcnow
from server.docs_assets import install_docs
from server.jobs import run_periodically
from server.keys import load_keys
from server.metrics import install_metrics
from server.notifications.worker import run_delivery_worker
from server.policy.schema import load_policy
from server.routers import ROUTERS
from server.settings import Settings, get_settings
from server.transparency.sealer import run_sealer


def build_context(
    settings: Settings, *, bind: Any | None = None, clock: Clock | None = None
) -> AppContext:
    """Load policy and keys once; refuse to start when either is invalid.

    Raises `server.policy.schema.PolicyError` or `server.keys.KeyFileError` with a message naming
    the file and what is wrong with it.
    """
    policy = load_policy(settings.policy_file)
    keys = load_keys(settings.server_key_dir)
    if bind is None:
        bind = make_engine(settings.effective_database_url, **engine_arguments(settings))
    return AppContext(
        settings=settings,
        sessions=make_session_factory(bind),
        policy=policy,
        keys=keys,
        clock=clock or utcnow,
    )


class RefcheckAPI(FastAPI):
    """FastAPI whose API description declares every error answer as problem+json."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = problems.document_problems(super().openapi(), self.routes)
        return self.openapi_schema


def create_app(
    settings: Settings | None = None,
    *,
    bind: Any | None = None,
    clock: Clock | None = None,
    context: AppContext | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    logging.getLogger("refcheck").setLevel(settings.log_level.upper())
    ctx = context or build_context(settings, bind=bind, clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if settings.run_background_jobs:
            tasks.append(asyncio.create_task(run_periodically(ctx, settings.job_interval_seconds)))
            # Bound to one connection (the tests), two threads must not share it: the jobs'
            # own seal (their last job) then does the sealing.
            if not isinstance(ctx.sessions.kw["bind"], Connection):
                tasks.append(asyncio.create_task(run_sealer(ctx)))
            tasks.append(asyncio.create_task(run_delivery_worker(ctx)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = RefcheckAPI(
        title="refcheck",
        version="1",
        description="Privacy-preserving reference checks for a PSEAH network.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    admission = Admission(
        concurrency=settings.max_concurrent_requests,
        queue_size=settings.request_queue_size,
        queue_timeout=settings.request_queue_timeout_seconds,
        org_slots=settings.org_share_slots,
    )
    app.state.admission = admission
    app.state.check_pacing = CheckPacing(settings.checks_at_once)
    # Added first, so it is inside the error containment and the size limits: a request over a
    # limit is refused before it waits for a place.
    app.add_middleware(AdmissionMiddleware, admission=admission, org_of=org_of_bearer(ctx))
    problems.install(
        app, max_body_bytes=settings.max_body_bytes, max_header_bytes=settings.max_header_bytes
    )
    for router in ROUTERS:
        app.include_router(router)
    install_docs(app)  # /docs with swagger-ui served from here, not a CDN (server.docs_assets)
    # Last, so its middleware is the outermost: refusals before a route runs count too.
    install_metrics(app, settings, ctx.sessions.kw["bind"], ctx.now)
    return app
