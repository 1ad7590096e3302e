"""Imports every models module so `Base.metadata` is complete for Alembic and `alembic check`.

Each domain that adds tables adds its models module here.
"""

from __future__ import annotations

from server.audit import models as audit_models
from server.auth import models as auth_models
from server.cases import models as cases_models
from server.checks import models as checks_models
from server.consents import models as consents_models
from server.db import Base
from server.disclosures import models as disclosures_models
from server.filter import models as filter_models
from server.notifications import models as notifications_models
from server.oprf import models as oprf_models
from server.quotas import models as quotas_models
from server.registry import models as registry_models
from server.stats import models as stats_models
from server.transparency import models as transparency_models

__all__ = [
    "Base",
    "audit_models",
    "auth_models",
    "cases_models",
    "checks_models",
    "consents_models",
    "disclosures_models",
    "filter_models",
    "notifications_models",
    "oprf_models",
    "quotas_models",
    "registry_models",
    "stats_models",
    "transparency_models",
]
