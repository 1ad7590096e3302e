"""Every router the app serves, in one list (the authorisation matrix test walks the app).

A domain adds its router by appending one import and one entry below; a route that is not in the
matrix of `tests/server/test_authorization_matrix.py` fails that test.
"""

from __future__ import annotations

from fastapi import APIRouter

from server.audit.routes import router as audit_router
from server.auth.routes import router as auth_router
from server.cases.routes import router as cases_router
from server.checks.routes import router as checks_router
from server.consents.routes import router as consents_router
from server.disclosures.routes import router as disclosures_router
from server.filter.routes import router as filter_router
from server.health.routes import router as health_router
from server.notifications.routes import router as notifications_router
from server.oprf.routes import router as oprf_router
from server.policy.routes import router as policy_router
from server.registry.routes import router as registry_router
from server.stats.routes import router as stats_router
from server.transparency.routes import router as transparency_router

ROUTERS: list[APIRouter] = [
    health_router,
    auth_router,
    registry_router,
    policy_router,
    audit_router,
    oprf_router,
    cases_router,
    consents_router,
    checks_router,
    stats_router,
    disclosures_router,
    filter_router,
    notifications_router,
    transparency_router,
]
