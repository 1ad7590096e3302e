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
    #: The pre-log hash chain (entries written before migration 0008); null after.
    prev_hash: str | None
    entry_hash: str | None
    #: The entry's leaf in the transparency log; null until the next seal.
    leaf_index: int | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    #: Pass as `after_seq` for the next page; null when this page is the last.
    next_after: int | None
