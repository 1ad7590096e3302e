"""Concurrency of the transparency log, on a database of its own with real transactions:
writers never wait on a shared head, two sealers at once make one tree, sealing carries on across
restarts, and migration 0008 makes the pre-log chain the tree's first leaves."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, func, insert, select, text, update

from protocol import merkle
from server.audit.chain import GENESIS_HASH, canonical_entry, entry_digest
from server.audit.models import AuditEntry
from server.audit.services import record
from server.context import AppContext
from server.db import make_engine, make_session_factory, utcnow
from server.keys import ServerKeys
from server.migrate import upgrade
from server.policy.schema import load_policy
from server.settings import Settings
from server.transparency.models import TreeHead
from server.transparency.sealer import seal, seal_once
from server.transparency.verify import verify_trail
from tests.databases import dispose_database_url, fresh_database_url, postgres_server_url


@pytest.fixture
def own_db(tmp_path: Path) -> Iterator[str]:
    url = fresh_database_url(tmp_path, "refcheck_tlog")
    try:
        yield url
    finally:
        dispose_database_url(url)


def _context(url: str, settings: Settings, keys: ServerKeys) -> tuple[AppContext, Engine]:
    engine = make_engine(url)
    ctx = AppContext(
        settings=settings,
        sessions=make_session_factory(engine),
        policy=load_policy(settings.policy_file),
        keys=keys,
        clock=utcnow,
    )
    return ctx, engine


def _append(ctx: AppContext, n: int) -> None:
    with ctx.sessions() as session:
        for i in range(n):
            record(session, ctx, None, "test.event", details={"i": i})
        session.commit()


def _verify_ok(ctx: AppContext) -> None:
    with ctx.sessions() as session:
        report = verify_trail(
            session,
            ctx.keys.audit_key.public_key(),
            ctx.keys.audit_key_id,
            network_id=ctx.keys.network_id,
        )
    assert report.ok, report.findings


@pytest.mark.postgres
@pytest.mark.skipif(postgres_server_url() is None, reason="REFCHECK_TEST_DATABASE_URL is not set")
def test_twenty_concurrent_writers_never_wait_on_a_shared_head(own_db, settings, server_keys):
    """20 transactions each append an entry and stay open; all of them get there, and
    PostgreSQL shows no lock anybody waits for. (With the head row every append locked, the
    second writer would have waited for the first one's commit.)"""
    upgrade(own_db)
    ctx, engine = _context(own_db, settings, server_keys)
    writers = 20
    appended = threading.Barrier(writers + 1, timeout=30)
    release = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with ctx.sessions() as session:
                record(session, ctx, None, "test.concurrent", details={})
                session.flush()
                appended.wait()
                release.wait(30)
                session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    try:
        for t in threads:
            t.start()
        # Every writer has appended while all 20 transactions are open at once.
        appended.wait()
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                )
            ).scalar_one()
            open_writers = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'idle in transaction'"
                )
            ).scalar_one()
            # A sealer meanwhile neither waits for them nor sees them.
            assert seal_once(ctx) is not None
        assert waiting == 0
        assert open_writers >= writers
    finally:
        release.set()
        for t in threads:
            t.join(30)
        engine.dispose()
    assert not errors
    ctx2, engine2 = _context(own_db, settings, server_keys)
    try:
        assert seal_once(ctx2) is not None
        with ctx2.sessions() as session:
            placed = session.scalar(
                select(func.count()).where(
                    AuditEntry.action == "test.concurrent", AuditEntry.leaf_index.is_not(None)
                )
            )
        assert placed == writers
        _verify_ok(ctx2)
    finally:
        engine2.dispose()


def test_two_sealers_at_once_make_one_consistent_tree(own_db, settings, server_keys):
    upgrade(own_db)
    ctx, engine = _context(own_db, settings, server_keys)
    try:
        _append(ctx, 50)
        start = threading.Barrier(2)
        stop = time.monotonic() + 3
        failures: list[BaseException] = []

        def sealer() -> None:
            start.wait()
            while time.monotonic() < stop:
                try:
                    with ctx.sessions() as session:
                        seal(session, ctx, batch=7)
                        session.commit()
                except BaseException as exc:  # noqa: BLE001 - counted below
                    failures.append(exc)

        def writer() -> None:
            while time.monotonic() < stop:
                _append(ctx, 3)
                time.sleep(0.01)

        threads = [threading.Thread(target=f) for f in (sealer, sealer, writer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # A sealer that lost a race may roll back (a unique key says no); none may corrupt.
        assert all(
            "Integrity" in type(f).__name__ or "Operational" in type(f).__name__ for f in failures
        ), failures
        while seal_once(ctx) is not None:
            pass
        with ctx.sessions() as session:
            heads = session.scalars(select(TreeHead).order_by(TreeHead.id)).all()
            entries = session.scalars(select(AuditEntry).order_by(AuditEntry.leaf_index)).all()
            assert [h.id for h in heads] == list(range(1, len(heads) + 1))
            sizes = [h.tree_size for h in heads]
            assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
            tree = merkle.MemoryTree([canonical_entry(e) for e in entries])
            assert [e.leaf_index for e in entries] == list(range(len(entries)))
            for head in heads:
                assert tree.root(head.tree_size).hex() == head.root_hash
        _verify_ok(ctx)
    finally:
        engine.dispose()


def test_sealing_carries_on_consistently_after_a_restart(own_db, settings, server_keys):
    upgrade(own_db)
    roots = []
    for round_ in range(3):
        # A new process each round: nothing of the tree is remembered but what is stored.
        ctx, engine = _context(own_db, settings, server_keys)
        try:
            _append(ctx, 3 + round_)
            head = seal_once(ctx)
            assert head is not None
            roots.append((head.tree_size, bytes.fromhex(head.root_hash)))
        finally:
            engine.dispose()
    ctx, engine = _context(own_db, settings, server_keys)
    try:
        with ctx.sessions() as session:
            entries = session.scalars(select(AuditEntry).order_by(AuditEntry.leaf_index)).all()
        tree = merkle.MemoryTree([canonical_entry(e) for e in entries])
        for (first, r1), (second, r2) in zip(roots, roots[1:], strict=False):
            merkle.verify_consistency(first, second, r1, r2, tree.consistency_proof(first, second))
        _verify_ok(ctx)
    finally:
        engine.dispose()


def test_migration_makes_the_existing_chain_the_first_leaves(own_db, settings, server_keys):
    upgrade(own_db, "0007_filter_revisions")
    engine = make_engine(own_db)
    entries = cast(Table, AuditEntry.__table__)
    prev = GENESIS_HASH
    at = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            for seq in range(1, 8):
                values: dict[str, Any] = {
                    "seq": seq,
                    "at": at + timedelta(minutes=seq),
                    "actor_principal_id": None,
                    "actor_org_id": None,
                    "action": "legacy.event",
                    "object_type": None,
                    "object_id": None,
                    "details": {"n": seq},
                    "prev_hash": prev,
                }
                prev = entry_digest(**values)
                conn.execute(insert(entries).values(**values, entry_hash=prev))
            conn.execute(
                text("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 7, :h)"),
                {"h": prev},
            )
    finally:
        engine.dispose()
    upgrade(own_db)
    ctx, engine = _context(own_db, settings, server_keys)
    try:
        with ctx.sessions() as session:
            placed = session.execute(
                select(AuditEntry.seq, AuditEntry.leaf_index).order_by(AuditEntry.seq)
            ).all()
        assert [(s, i) for s, i in placed] == [(s, s - 1) for s in range(1, 8)]
        _append(ctx, 2)  # new entries after the chain: numbered on from it
        head = seal_once(ctx)
        assert head is not None and head.tree_size == 9
        with ctx.sessions() as session:
            new = session.scalars(select(AuditEntry.seq).where(AuditEntry.seq > 7)).all()
        assert sorted(new) == [8, 9]
        _verify_ok(ctx)
        # The chain is still checked inside the log: an edited pre-log entry is named twice.
        with ctx.sessions() as session:
            session.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(details={"n": 0}))
            session.commit()
            report = verify_trail(
                session,
                ctx.keys.audit_key.public_key(),
                ctx.keys.audit_key_id,
                network_id=ctx.keys.network_id,
            )
        messages = [f.message for f in report.findings]
        assert any("leaf 2 (entry 3) altered" in m for m in messages), messages
        assert any("entry 3 altered" in m and "hash" in m for m in messages), messages
    finally:
        engine.dispose()
