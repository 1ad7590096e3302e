"""Imports every models module so `Base.metadata` is complete for Alembic and `alembic check`.

Each domain that adds tables adds its models module here.
"""

from __future__ import annotations

from server.audit import models as audit_models
from server.auth import models as auth_models
from server.db import Base
from server.registry import models as registry_models

__all__ = ["Base", "audit_models", "auth_models", "registry_models"]
