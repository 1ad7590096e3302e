"""The sealer: places new audit entries as leaves of the Merkle tree and signs a tree head.

Writers never wait for it: an append is one INSERT, and the sealer only reads entries that are
committed, in sequence order, and gives them the next leaf indexes. It runs in every worker
every `audit_seal_interval_seconds` (policy); the workers elect one per run by locking the
`transparency_sealer` row (`FOR UPDATE SKIP LOCKED` on PostgreSQL: a busy lock means another
sealer is at work, so this one skips; SQLite's single writer does the same by itself). Were two
to run anyway, the unique leaf indexes, node keys and head ids let only one commit: the tree
cannot fork.

A seal is one transaction: leaf indexes, new nodes and the signed head commit together, so a
crash leaves the tree as the last head says, and the next seal carries on from there (a restart
reads the tree's right edge back from the stored nodes). `seal_once` works the seal out first,
from a snapshot in a read (the entries read, hashed, the head signed), and then writes it in a
short transaction that first checks the log still ends where the snapshot saw it end: on SQLite
every writer of the network waits while a write transaction is open, and a seal prepared inside
one held them all for 12 to 84 ms each second under load (issue 17).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import cast

from anyio import to_thread
from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from protocol import merkle
from protocol.signed import format_time, sign
from server.audit.chain import canonical_entry
from server.audit.models import AuditEntry
from server.context import AppContext
from server.db import Begin, bind_for, transaction
from server.transparency.models import MerkleNode, SealerLock, TreeHead
from server.transparency.tree import StoredTree

log = logging.getLogger("refcheck.server.transparency")

#: Entries placed per seal at most: a seal's transaction stays short, and a backlog (the first
#: seal after migration 0008) is worked off one interval at a time.
SEAL_BATCH = 5000

_LOCK = select(SealerLock.id).where(SealerLock.id == 1).with_for_update(skip_locked=True)
_CREATE_LOCK = text("INSERT INTO transparency_sealer (id) VALUES (1) ON CONFLICT (id) DO NOTHING")
# Core statements, executed many at once (the ORM's bulk paths would try to synchronise the
# session's objects).
_entries = cast(Table, AuditEntry.__table__)
_PLACE = (
    update(_entries)
    .where(_entries.c.seq == bindparam("b_seq"), _entries.c.leaf_index.is_(None))
    .values(leaf_index=bindparam("b_index"))
)
_INSERT_NODES = insert(cast(Table, MerkleNode.__table__))


class SealerStateError(RuntimeError):
    """The stored tree does not end where its newest signed head says: something was deleted
    or placed behind the sealer's back. The sealer stops sealing; run `audit verify`."""


def _lead(session: Session) -> bool:
    """Take the sealer lock for this transaction; False when another sealer holds it."""
    if session.execute(_LOCK).first() is not None:
        return True
    if session.scalar(select(func.count()).select_from(SealerLock)):
        return False  # the row exists, so another sealer has it locked
    session.execute(_CREATE_LOCK)
    return session.execute(_LOCK).first() is not None


Edge = list[tuple[int, int, bytes]]


def extend(edge: Edge, size: int, leaves: list[bytes]) -> list[dict[str, object]]:
    """Append `leaves` (leaf hashes) to a tree of `size` leaves whose right edge (its frontier,
    `(level, position, hash)` left to right) is `edge`, updating `edge` in place; return every
    new node, leaves included, as rows of `transparency_nodes`."""
    nodes: list[dict[str, object]] = []
    for offset, leaf in enumerate(leaves):
        edge.append((0, size + offset, leaf))
        nodes.append({"level": 0, "position": size + offset, "hash": leaf})
        # Two complete subtrees of one level side by side make one of the next level.
        while len(edge) > 1 and edge[-1][0] == edge[-2][0]:
            level, left_position, left = edge[-2]
            parent = (level + 1, left_position >> 1, merkle.node_hash(left, edge[-1][2]))
            edge[-2:] = [parent]
            nodes.append({"level": parent[0], "position": parent[1], "hash": parent[2]})
    return nodes


def latest_head(session: Session) -> TreeHead | None:
    return session.scalars(select(TreeHead).order_by(TreeHead.id.desc()).limit(1)).first()


@dataclass(frozen=True)
class PreparedSeal:
    """A seal worked out from one snapshot of the log, to be written by `write_seal` if the
    log still ends where it ended then."""

    head_id: int | None
    size: int
    places: list[dict[str, object]]
    nodes: list[dict[str, object]]
    head: TreeHead


def seal(session: Session, ctx: AppContext, *, batch: int = SEAL_BATCH) -> TreeHead | None:
    """Place up to `batch` unsealed entries and sign the new head, in the caller's transaction.

    Returns the new head; None when another sealer leads or nothing was appended since the last
    head (the very first seal signs even an empty tree, so `GET /v1/transparency/sth` answers).
    """
    if not _lead(session):
        return None
    prepared = prepare_seal(session, ctx, batch=batch)
    return None if prepared is None else write_seal(session, prepared)


def prepare_seal(
    session: Session, ctx: AppContext, *, batch: int = SEAL_BATCH
) -> PreparedSeal | None:
    """Read the unsealed entries and the tree's right edge, and work out the leaves, the new
    nodes and the signed head: everything but the writes, so that `seal_once` can do it in a
    read, which on SQLite holds no lock while it hashes and signs. None when there is nothing
    to seal."""
    head = latest_head(session)
    placed = session.scalar(select(func.max(AuditEntry.leaf_index)))
    size = placed + 1 if placed is not None else 0
    # Before the first head, the leaves migration 0008 placed (the pre-log chain) are the tree.
    if head is not None and head.tree_size != size:
        raise SealerStateError("the stored tree does not end at the newest signed head")
    entries = list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.leaf_index.is_(None))
            .order_by(AuditEntry.seq)
            .limit(batch)
        )
    )
    if not entries and head is not None:
        return None
    edge = StoredTree(session, size).frontier_hashes()
    leaves = [merkle.leaf_hash(canonical_entry(entry)) for entry in entries]
    nodes = extend(edge, size, leaves)
    places = [{"b_seq": entry.seq, "b_index": size + i} for i, entry in enumerate(entries)]
    for entry in entries:
        session.expunge(entry)
    new_size = size + len(entries)
    root = merkle.root_from_frontier([h for _, _, h in edge])
    now = ctx.now()
    signed = sign(
        ctx.keys.signing_key,
        {
            "type": "tree-head",
            "network_id": ctx.keys.network_id,
            "issued_at": format_time(now),
            "tree_size": new_size,
            "root_hash": root.hex(),
        },
    )
    new_head = TreeHead(
        id=(head.id + 1) if head is not None else 1,
        tree_size=new_size,
        root_hash=root.hex(),
        issued_at=now,
        signed=signed.framed(),
    )
    return PreparedSeal(head.id if head is not None else None, size, places, nodes, new_head)


def write_seal(session: Session, prepared: PreparedSeal) -> TreeHead | None:
    """Write `prepared` in the caller's transaction, which must lead (`_lead`); None, writing
    nothing, when the log moved on since it was prepared (another sealer signed a head, or
    entries were placed, meanwhile: leaf indexes are unique, so no placement can hide below
    the largest): the next run prepares again."""
    head = latest_head(session)
    placed = session.scalar(select(func.max(AuditEntry.leaf_index)))
    if (head.id if head is not None else None) != prepared.head_id or (
        placed + 1 if placed is not None else 0
    ) != prepared.size:
        return None
    if prepared.places:
        session.execute(_PLACE, prepared.places)
        session.execute(_INSERT_NODES, prepared.nodes)
    session.add(prepared.head)
    session.flush()
    return prepared.head


def has_work(ctx: AppContext) -> bool:
    """Whether a seal would do anything: a cheap read that takes no write lock (on SQLite a
    sealer that always began a write would queue behind, and hold up, every writer)."""
    session = ctx.sessions(bind=bind_for(ctx.sessions.kw["bind"], Begin.READ))
    try:
        pending = session.execute(
            select(AuditEntry.seq).where(AuditEntry.leaf_index.is_(None)).limit(1)
        ).first()
        return pending is not None or latest_head(session) is None
    finally:
        session.rollback()
        session.close()


def seal_once(ctx: AppContext) -> TreeHead | None:
    """One sealer run in its own transaction; errors are logged by class name and the next
    run tries again."""
    try:
        if not has_work(ctx):
            return None
        # Prepared from a snapshot, written in a short transaction of its own: on SQLite every
        # writer of the network waits while a write transaction is open.
        reader = ctx.sessions(bind=bind_for(ctx.sessions.kw["bind"], Begin.READ))
        try:
            prepared = prepare_seal(reader, ctx)
        finally:
            reader.rollback()
            reader.close()
        if prepared is None:
            return None
        with transaction(ctx.sessions) as session:
            return write_seal(session, prepared) if _lead(session) else None
    except Exception as exc:  # noqa: BLE001 - the loop must survive a failed run
        log.error("sealing the audit log failed: %s", type(exc).__name__)
        return None


async def run_sealer(ctx: AppContext) -> None:
    """Seal now and then every `audit_seal_interval_seconds`, in a worker thread."""
    while True:
        await to_thread.run_sync(seal_once, ctx)
        await asyncio.sleep(ctx.policy.audit_seal_interval_seconds)
