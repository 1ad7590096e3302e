"""The audit trail: appends, checkpoints, paging, export, and tampering caught by `verify`.

Tampering is done the way an attacker with database access would: SQL straight on the tables,
bypassing the chain code; `verify_trail` (what `refcheck-server audit verify` runs) must name the
first entry altered, removed or inserted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from server.audit.chain import GENESIS_HASH, digest_of, entry_digest
from server.audit.models import AuditCheckpoint, AuditEntry, AuditHead
from server.audit.services import create_checkpoint, create_checkpoint_if_moved, record
from server.audit.verify import VerifyReport, verify_trail
from server.context import AppContext

pytestmark = pytest.mark.anyio


def _append(session: Session, ctx: AppContext, n: int) -> None:
    for i in range(n):
        record(
            session,
            ctx,
            None,
            "test.event",
            object_type="thing",
            object_id=f"thing-{i}",
            details={"index": i, "count": i * 2},
        )
    session.commit()


def _verify(session: Session, ctx: AppContext) -> VerifyReport:
    session.expire_all()
    return verify_trail(session, ctx.keys.audit_key.public_key(), ctx.keys.audit_key_id)


def _entry(session: Session, seq: int) -> AuditEntry:
    entry = session.get(AuditEntry, seq)
    assert entry is not None
    return entry


def _rehash(session: Session, seq: int, **changes) -> None:
    """Change an entry and recompute its own hash, as a careful attacker would."""
    entry = _entry(session, seq)
    for key, value in changes.items():
        setattr(entry, key, value)
    entry.entry_hash = digest_of(entry)
    session.commit()


def test_untouched_trail_verifies(session, ctx):
    _append(session, ctx, 5)
    create_checkpoint(session, ctx)
    session.commit()
    report = _verify(session, ctx)
    assert report.ok, report.findings
    assert report.entries == 5
    assert report.checkpoints == 1


def test_empty_trail_verifies(session, ctx):
    report = _verify(session, ctx)
    assert report.ok and report.entries == 0


def test_entries_chain_from_genesis_with_contiguous_numbers(session, ctx):
    _append(session, ctx, 3)
    entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS_HASH
    assert entries[1].prev_hash == entries[0].entry_hash
    head = session.get(AuditHead, 1)
    assert head is not None and head.last_seq == 3 and head.last_hash == entries[2].entry_hash


def test_edited_entry_is_reported_as_altered(session, ctx):
    _append(session, ctx, 6)
    session.execute(
        update(AuditEntry).where(AuditEntry.seq == 3).values(details={"index": 99, "count": 0})
    )
    session.commit()
    first = _verify(session, ctx).first
    assert first is not None and (first.kind, first.seq) == ("altered", 3)
    assert "entry 3 altered" in first.message


def test_edited_and_rehashed_entry_is_reported_as_altered(session, ctx):
    _append(session, ctx, 6)
    _rehash(session, 3, action="test.innocent")
    first = _verify(session, ctx).first
    assert first is not None and (first.kind, first.seq) == ("altered", 3)


def test_edited_and_rehashed_last_entry_is_reported_as_altered(session, ctx):
    _append(session, ctx, 4)
    _rehash(session, 4, object_id="other")
    first = _verify(session, ctx).first
    assert first is not None and (first.kind, first.seq) == ("altered", 4)


def test_deleted_entry_is_reported_as_removed(session, ctx):
    _append(session, ctx, 6)
    session.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    session.commit()
    first = _verify(session, ctx).first
    assert first is not None and (first.kind, first.seq) == ("removed", 3)
    assert "entry 3 removed" in first.message


def test_deleted_first_entry_is_reported_as_removed(session, ctx):
    _append(session, ctx, 3)
    session.execute(delete(AuditEntry).where(AuditEntry.seq == 1))
    session.commit()
    first = _verify(session, ctx).first
    assert first is not None and (first.kind, first.seq) == ("removed", 1)


def test_deleted_last_entry_is_reported_as_removed(session, ctx):
    _append(session, ctx, 5)
    session.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
    session.commit()
    first = _verify(session, ctx).first
    assert first is not None and (first.kind, first.seq) == ("removed", 5)


def test_truncated_tail_with_head_rewritten_is_caught_by_the_checkpoint(session, ctx):
    _append(session, ctx, 5)
    create_checkpoint(session, ctx)
    session.commit()
    fourth = _entry(session, 4)
    session.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
    session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(last_seq=4, last_hash=fourth.entry_hash)
    )
    session.commit()
    first = _verify(session, ctx).first
    assert first is not None and (first.kind, first.seq) == ("removed", 5)


def _forged_values(session: Session, seq: int, prev_hash: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "seq": seq,
        "at": _entry(session, 1).at,
        "actor_principal_id": None,
        "actor_org_id": None,
        "action": "test.forged",
        "object_type": None,
        "object_id": None,
        "details": {},
        "prev_hash": prev_hash,
    }
    values["entry_hash"] = entry_digest(**values)
    return values


def test_row_appended_beyond_the_head_is_reported_as_inserted(session, ctx):
    _append(session, ctx, 4)
    session.execute(
        insert(AuditEntry).values(**_forged_values(session, 5, _entry(session, 4).entry_hash))
    )
    session.commit()
    first = _verify(session, ctx).first
    assert first is not None and (first.kind, first.seq) == ("inserted", 5)
    assert "entry 5 inserted" in first.message


def test_row_inserted_in_the_middle_is_reported_as_inserted(session, ctx):
    _append(session, ctx, 6)
    # Make room at 3 (two steps, so no unique-key clash mid-statement), then insert a row whose
    # own hash and link are perfect.
    session.execute(update(AuditEntry).where(AuditEntry.seq >= 3).values(seq=AuditEntry.seq + 1000))
    session.execute(
        update(AuditEntry).where(AuditEntry.seq >= 1000).values(seq=AuditEntry.seq - 999)
    )
    session.execute(
        insert(AuditEntry).values(**_forged_values(session, 3, _entry(session, 2).entry_hash))
    )
    session.commit()
    first = _verify(session, ctx).first
    assert first is not None and (first.kind, first.seq) == ("inserted", 3)
    assert "entry 3 inserted" in first.message


def test_consistently_rewritten_tail_is_caught_by_a_signed_checkpoint(session, ctx):
    _append(session, ctx, 3)
    create_checkpoint(session, ctx)
    _append(session, ctx, 3)
    create_checkpoint(session, ctx)
    session.commit()
    # Rewrite entries 4..6 and the head so that the chain itself is flawless again.
    prev = _entry(session, 3).entry_hash
    for seq in (4, 5, 6):
        entry = _entry(session, seq)
        entry.details = {"rewritten": True}
        entry.prev_hash = prev
        entry.entry_hash = digest_of(entry)
        prev = entry.entry_hash
    head = session.get(AuditHead, 1)
    assert head is not None
    head.last_hash = prev
    session.commit()
    first = _verify(session, ctx).first
    assert first is not None and first.kind == "altered"
    assert first.seq == 4, "the first entry after the last matching checkpoint"


def test_forged_checkpoint_signature_is_reported(session, ctx):
    _append(session, ctx, 2)
    checkpoint = create_checkpoint(session, ctx)
    session.commit()
    session.execute(
        update(AuditCheckpoint)
        .where(AuditCheckpoint.id == checkpoint.id)
        .values(signature="00" * 64)
    )
    session.commit()
    first = _verify(session, ctx).first
    assert first is not None and first.kind == "checkpoint"


def test_checkpoint_moved_to_another_head_is_reported(session, ctx):
    _append(session, ctx, 3)
    checkpoint = create_checkpoint(session, ctx)
    session.commit()
    session.execute(
        update(AuditCheckpoint).where(AuditCheckpoint.id == checkpoint.id).values(seq=2)
    )
    session.commit()
    assert _verify(session, ctx).first is not None


def test_periodic_checkpoint_only_when_the_trail_moved(session, ctx):
    def count() -> int:
        return session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0

    base = count()
    _append(session, ctx, 2)
    assert create_checkpoint_if_moved(session, ctx) is not None
    assert create_checkpoint_if_moved(session, ctx) is None
    _append(session, ctx, 1)
    assert create_checkpoint_if_moved(session, ctx) is not None
    assert count() == base + 2


# --- routes ----------------------------------------------------------------------------------


async def test_audit_pages_follow_next_after(network, client, session, ctx):
    _append(session, ctx, 5)
    seen: list[int] = []
    after = 0
    while True:
        response = await client.get(
            "/v1/audit", params={"after_seq": after, "limit": 2}, headers=network.auditor.headers
        )
        assert response.status_code == 200
        page = response.json()
        seen += [item["seq"] for item in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    total = session.scalar(select(func.count()).select_from(AuditEntry))
    assert seen == list(range(1, (total or 0) + 1))


async def test_audit_export_is_one_json_entry_per_line(network, client, session, ctx):
    _append(session, ctx, 3)
    response = await client.get("/v1/audit/export", headers=network.admin.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["action"] == "test.event"
    assert {"entry_hash", "prev_hash", "actor_org_id", "details"} <= lines[0].keys()


async def test_registry_changes_are_audited_with_actor_and_no_values(network, client, session):
    response = await client.patch(
        f"/v1/orgs/{network.org_b.id}",
        json={"status": "suspended", "mou_sha256": "ab" * 32},
        headers=network.admin.headers,
    )
    assert response.status_code == 200
    entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert entry.action == "org.update"
    assert entry.actor_principal_id == network.admin.id
    assert entry.actor_org_id == network.secretariat.id
    assert entry.object_id == network.org_b.id
    assert entry.details["fields"] == ["mou_sha256", "status"]
    assert entry.details["status"] == {"from": "active", "to": "suspended"}
    assert "ab" * 32 not in json.dumps(entry.details)
