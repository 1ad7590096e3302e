"""Appending to the hash chain, and the hash itself.

Each entry's hash covers its content and the previous hash, so editing, deleting or inserting a row
anywhere breaks every later link; `refcheck-server audit verify` recomputes and names the first one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, text, update
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


_HEAD = select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1).with_for_update()
# The first append of a database creates the head; two first appends at once must not both do it.
_CREATE_HEAD = text(
    "INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, :genesis) "
    "ON CONFLICT (id) DO NOTHING"
)
_entry_table = cast(Table, AuditEntry.__table__)
_INSERT_ENTRY = insert(_entry_table)
_head_table = cast(Table, AuditHead.__table__)
_MOVE_HEAD = (
    update(_head_table)
    .where(_head_table.c.id == 1)
    .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
)


def locked_head(session: Session) -> tuple[int, str]:
    """The chain's head (`seq`, hash), locked until the transaction ends: every append and
    checkpoint takes this lock, so concurrent writers cannot fork the chain (on SQLite the
    transaction already holds the database's write lock)."""
    head = session.execute(_HEAD).first()
    if head is None:
        session.execute(_CREATE_HEAD, {"genesis": GENESIS_HASH})
        head = session.execute(_HEAD).one()
    return int(head[0]), str(head[1])


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
    """Append one entry in the caller's transaction, so the entry and the change commit together.

    Three precompiled Core statements (lock and read the head, insert the entry, move the head),
    not the ORM's unit of work: every check appends, and the ORM's flush cost more than the
    statements. The returned entry is a detached copy of what was written.
    """
    details = details or {}
    # Round-trip through JSON now: what is hashed must be exactly what the JSON column returns.
    details = json.loads(json.dumps(details, sort_keys=True))
    last_seq, last_hash = locked_head(session)
    entry = AuditEntry(
        seq=last_seq + 1,
        at=at,
        actor_principal_id=actor_principal_id,
        actor_org_id=actor_org_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
        prev_hash=last_hash,
        entry_hash="",
    )
    entry.entry_hash = digest_of(entry)
    session.execute(_INSERT_ENTRY, {c.key: getattr(entry, c.key) for c in _entry_table.columns})
    session.execute(_MOVE_HEAD, {"new_seq": entry.seq, "new_hash": entry.entry_hash})
    return entry
