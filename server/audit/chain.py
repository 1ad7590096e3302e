"""Appending to the audit trail, and the canonical bytes of an entry (its Merkle leaf).

An append is one INSERT: the database hands out the sequence number, nothing is locked, so
concurrent writers never wait on each other (the single head row every write used to lock was
the network's bottleneck). The entry becomes a leaf of the transparency log when the sealer
places it (`server.transparency.sealer`); from then on its content is bound by signed tree heads.

Entries written before the log (migration 0008) also carry the hash chain they were written
with (`prev_hash`, `entry_hash`); `entry_digest` recomputes that chain for `audit verify`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry

GENESIS_HASH = "0" * 64


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


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
    """The hash of an entry of the pre-log hash chain (migration 0008 kept those)."""
    canonical = _json(
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
        }
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
        prev_hash=entry.prev_hash or "",
    )


def canonical_entry(entry: AuditEntry) -> bytes:
    """The leaf data of `entry`: compact ASCII JSON with sorted keys of `seq`, `at`
    (RFC 3339 with microseconds), the actor, `action`, the object and `details`; for a pre-log
    entry also its `prev_hash` and `entry_hash`. The leaf hash is `SHA-256(0x00 || this)`.

    What a client is shown for an inclusion proof, and what `audit verify` recomputes.
    """
    fields: dict[str, Any] = {
        "seq": entry.seq,
        "at": entry.at.isoformat(timespec="microseconds"),
        "actor_principal_id": entry.actor_principal_id,
        "actor_org_id": entry.actor_org_id,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "details": entry.details,
    }
    if entry.entry_hash is not None:
        fields["prev_hash"] = entry.prev_hash
        fields["entry_hash"] = entry.entry_hash
    return _json(fields).encode("ascii")


_entry_table = cast(Table, AuditEntry.__table__)
_INSERT_ENTRY = insert(_entry_table).returning(_entry_table.c.seq)
_COLUMNS = (
    "at",
    "actor_principal_id",
    "actor_org_id",
    "action",
    "object_type",
    "object_id",
    "details",
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
    """Append one entry in the caller's transaction, so the entry and the change commit together.

    One precompiled Core INSERT … RETURNING seq, not the ORM's unit of work: every check
    appends. The returned entry is a detached copy of what was written (`leaf_index` is None
    until the sealer places it).
    """
    # Round-trip through JSON now: what the leaf hashes must be exactly what the column returns.
    details = json.loads(_json(details or {}))
    entry = AuditEntry(
        at=at,
        actor_principal_id=actor_principal_id,
        actor_org_id=actor_org_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )
    values = {name: getattr(entry, name) for name in _COLUMNS}
    entry.seq = int(session.connection().execute(_INSERT_ENTRY, values).scalar_one())
    return entry
