"""The audit trail: appends without a shared head, paging, export, and what the periodic
sealer makes of them. Tampering with the log is `tests/server/test_transparency.py`."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from server.audit.services import record
from server.audit.verify import VerifyReport
from server.context import AppContext
from server.transparency.sealer import seal
from server.transparency.verify import verify_trail

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
    return verify_trail(
        session,
        ctx.keys.audit_key.public_key(),
        ctx.keys.audit_key_id,
        network_id=ctx.keys.network_id,
    )


def test_untouched_sealed_trail_verifies(session, ctx):
    _append(session, ctx, 5)
    seal(session, ctx)
    session.commit()
    report = _verify(session, ctx)
    assert report.ok, report.findings
    assert report.heads >= 1 and report.tree_size == report.entries >= 5


def test_empty_trail_verifies(session, ctx):
    report = _verify(session, ctx)
    assert report.ok and report.entries == 0


def test_appends_get_increasing_numbers_and_wait_for_the_sealer(session, ctx):
    before = session.scalar(select(func.max(AuditEntry.seq))) or 0
    _append(session, ctx, 3)
    entries = list(session.scalars(select(AuditEntry).where(AuditEntry.seq > before)))
    assert len(entries) == 3 and [e.seq for e in entries] == sorted(e.seq for e in entries)
    # Written with no chain hash and no leaf: the sealer places them.
    assert all(e.leaf_index is None and e.entry_hash is None for e in entries)
    head = seal(session, ctx)
    assert head is not None
    session.expire_all()
    placed = sorted(
        session.scalars(select(AuditEntry.leaf_index).where(AuditEntry.seq > before)).all()
    )
    assert placed == list(range(head.tree_size - 3, head.tree_size))


def test_record_returns_the_entry_with_its_sequence_number(session, ctx):
    entry = record(session, ctx, None, "test.event", details={"n": 1})
    session.commit()
    assert session.get(AuditEntry, entry.seq) is not None


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
    # Sequence numbers increase but need not be contiguous (PostgreSQL does not reuse the
    # number of a rolled-back append): every entry, once, in order.
    assert seen == sorted(session.scalars(select(AuditEntry.seq)).all())


async def test_audit_export_is_one_json_entry_per_line(network, client, session, ctx):
    _append(session, ctx, 3)
    response = await client.get("/v1/audit/export", headers=network.admin.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["seq"] for line in lines] == sorted(session.scalars(select(AuditEntry.seq)).all())
    assert lines[-1]["action"] == "test.event"
    assert {"actor_org_id", "details", "leaf_index"} <= lines[0].keys()


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
