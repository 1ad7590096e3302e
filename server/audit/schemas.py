"""Wire shapes of the audit trail (docs/api.md, "Audit")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    actor_principal_id: str | None
    actor_org_id: str | None
    action: str
    object_type: str | None
    object_id: str | None
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    #: Pass as `after_seq` for the next page; null when this page is the last.
    next_after: int | None
