"""Appending to the hash chain, and the hash itself.

Each entry's hash covers its content and the previous hash, so editing, deleting or inserting a row
anywhere breaks every later link; `refcheck-server audit verify` recomputes and names the first one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry, AuditHead

GENESIS_HASH = "0" * 64


def entry_digest(
    *,
    seq: int,
    at: datetime,
    actor_principal_id: str | None,
    actor_org_id: str | None,
    action: str,
    object_type: str | None,
    object_id: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    canonical = json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor_principal_id": actor_principal_id,
            "actor_org_id": actor_org_id,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "details": details,
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def digest_of(entry: AuditEntry) -> str:
    return entry_digest(
        seq=entry.seq,
        at=entry.at,
        actor_principal_id=entry.actor_principal_id,
        actor_org_id=entry.actor_org_id,
        action=entry.action,
        object_type=entry.object_type,
        object_id=entry.object_id,
        details=entry.details,
        prev_hash=entry.prev_hash,
    )


def append(
    session: Session,
    *,
    at: datetime,
    action: str,
    actor_principal_id: str | None = None,
    actor_org_id: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction, so the entry and the change commit together."""
    details = details or {}
    # Round-trip through JSON now: what is hashed must be exactly what the JSON column returns.
    details = json.loads(json.dumps(details, sort_keys=True))
    at = at.replace(microsecond=at.microsecond)  # keep microseconds: both backends store them
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar()
    if head is None:
        head = AuditHead(id=1, last_seq=0, last_hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    seq = head.last_seq + 1
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor_principal_id=actor_principal_id,
        actor_org_id=actor_org_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
        prev_hash=head.last_hash,
        entry_hash="",
    )
    entry.entry_hash = digest_of(entry)
    session.add(entry)
    head.last_seq = seq
    head.last_hash = entry.entry_hash
    session.flush()
    return entry
