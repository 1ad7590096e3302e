"""The FastAPI application factory.

`create_app` takes its settings (and optionally an engine or connection and a clock) as arguments,
so tests run the real app against a real database without touching globals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from server import problems
from server.context import AppContext, Clock
from server.db import make_engine, make_session_factory, utcnow
from server.keys import load_keys
from server.policy.schema import load_policy
from server.routers import ROUTERS
from server.settings import Settings, get_settings


def build_context(
    settings: Settings, *, bind: Any | None = None, clock: Clock | None = None
) -> AppContext:
    """Load policy and keys once; refuse to start when either is invalid."""
    policy = load_policy(settings.policy_file)
    keys = load_keys(settings.server_key_dir)
    if bind is None:
        bind = make_engine(settings.effective_database_url)
    return AppContext(
        settings=settings,
        sessions=make_session_factory(bind),
        policy=policy,
        keys=keys,
        clock=clock or utcnow,
    )


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
    app = FastAPI(
        title="refcheck",
        version="1",
        description="Privacy-preserving reference checks for a PSEAH network.",
    )
    app.state.ctx = ctx
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
