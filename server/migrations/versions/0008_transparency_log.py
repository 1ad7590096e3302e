"""transparency log: audit entries become Merkle leaves; no more shared head row

- `audit_entries.seq` is handed out by the database (a sequence on PostgreSQL, the rowid on
  SQLite), so an append locks nothing; `audit_head`, the row every write locked, is dropped;
- entries gain `leaf_index`; `prev_hash` and `entry_hash` stay for the entries written so far
  (NULL after), and are part of their leaves, so the tree commits to the chain as it stood;
- `transparency_nodes` (the tree), `transparency_tree_heads` (signed heads),
  `transparency_cosignatures` (witnesses') and `transparency_sealer` (the sealer's lock row);
- every existing entry becomes a leaf, in sequence order: the first leaves of the tree. The
  sealer's first run signs the head over them (the key file is not needed here).
- `audit_checkpoints` stays as it is: `audit verify` still checks the chain those signatures
  cover.

Revision ID: 0008_transparency_log
Revises: 0007_filter_revisions
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0008_transparency_log"
down_revision: str | Sequence[str] | None = "0007_filter_revisions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 5000


def _place_existing_entries(bind: sa.Connection) -> None:
    """Give every entry its leaf index in `seq` order and store the tree's nodes."""
    from protocol import merkle
    from server.audit.chain import canonical_entry
    from server.audit.models import AuditEntry
    from server.transparency.sealer import Edge, extend

    entries = sa.table(
        "audit_entries",
        sa.column("seq", _BIGINT),
        sa.column("at", server.db.UTCDateTime()),
        sa.column("actor_principal_id", sa.String()),
        sa.column("actor_org_id", sa.String()),
        sa.column("action", sa.String()),
        sa.column("object_type", sa.String()),
        sa.column("object_id", sa.String()),
        sa.column("details", sa.JSON()),
        sa.column("prev_hash", sa.String()),
        sa.column("entry_hash", sa.String()),
        sa.column("leaf_index", _BIGINT),
    )
    nodes = sa.table(
        "transparency_nodes",
        sa.column("level", sa.SmallInteger()),
        sa.column("position", _BIGINT),
        sa.column("hash", sa.LargeBinary()),
    )
    place = (
        sa.update(entries)
        .where(entries.c.seq == sa.bindparam("b_seq"))
        .values(leaf_index=sa.bindparam("b_index"))
    )
    edge: Edge = []
    size, after = 0, 0
    while True:
        rows = list(
            bind.execute(
                sa.select(entries)
                .where(entries.c.seq > after)
                .order_by(entries.c.seq)
                .limit(_BATCH)
            ).mappings()
        )
        if not rows:
            return
        batch = [AuditEntry(**{k: v for k, v in row.items() if k != "leaf_index"}) for row in rows]
        leaves = [merkle.leaf_hash(canonical_entry(e)) for e in batch]
        new_nodes = extend(edge, size, leaves)
        bind.execute(place, [{"b_seq": e.seq, "b_index": size + i} for i, e in enumerate(batch)])
        bind.execute(sa.insert(nodes), new_nodes)
        size += len(batch)
        after = batch[-1].seq


def upgrade() -> None:
    op.create_table(
        "transparency_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("position", _BIGINT, autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "position", name=op.f("pk_transparency_nodes")),
    )
    op.create_table(
        "transparency_tree_heads",
        sa.Column("id", _BIGINT, autoincrement=False, nullable=False),
        sa.Column("tree_size", _BIGINT, nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", server.db.UTCDateTime(), nullable=False),
        sa.Column("signed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transparency_tree_heads")),
        sa.UniqueConstraint("tree_size", name=op.f("uq_transparency_tree_heads_tree_size")),
    )
    op.create_table(
        "transparency_cosignatures",
        sa.Column("object_sha256", sa.String(length=64), nullable=False),
        sa.Column("witness_key", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "object_sha256", "witness_key", name=op.f("pk_transparency_cosignatures")
        ),
    )
    op.create_table(
        "transparency_sealer",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transparency_sealer")),
    )
    op.execute("INSERT INTO transparency_sealer (id) VALUES (1)")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leaf_index", _BIGINT, nullable=True))
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("entry_hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_entries_leaf_index"), ["leaf_index"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE audit_entries_seq OWNED BY audit_entries.seq")
        op.execute(
            "SELECT setval('audit_entries_seq', COALESCE((SELECT max(seq) FROM audit_entries), 0)"
            " + 1, false)"
        )
        op.execute(
            "ALTER TABLE audit_entries ALTER COLUMN seq SET DEFAULT nextval('audit_entries_seq')"
        )
    _place_existing_entries(bind)
    op.drop_table("audit_head")


def downgrade() -> None:
    bind = op.get_bind()
    unchained = bind.execute(
        sa.text("SELECT count(*) FROM audit_entries WHERE entry_hash IS NULL")
    ).scalar_one()
    if unchained:
        raise RuntimeError(
            "entries written since the transparency log have no hash chain; a downgrade would "
            "lose their protection"
        )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_seq", _BIGINT, nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    last = bind.execute(
        sa.text("SELECT seq, entry_hash FROM audit_entries ORDER BY seq DESC LIMIT 1")
    ).first()
    if last is not None:
        bind.execute(
            sa.text("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, :s, :h)"),
            {"s": last[0], "h": last[1]},
        )
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_entries ALTER COLUMN seq DROP DEFAULT")
        op.execute("DROP SEQUENCE audit_entries_seq")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_entries_leaf_index"), type_="unique")
        batch_op.alter_column("entry_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("leaf_index")
    op.drop_table("transparency_sealer")
    op.drop_table("transparency_cosignatures")
    op.drop_table("transparency_tree_heads")
    op.drop_table("transparency_nodes")
