"""filter revisions: the published registry filter, its head, and the deltas between revisions

`filter_head` is one row (the last revision number, locked by every publication, so workers and
the CLI take turns and the number never goes back). `filter_revisions` keeps each revision's
signed header and its changes against the one before; only the newest keeps the value list and
the fillers' `k`. Nothing to carry over: the first request or job after the upgrade publishes.

Revision ID: 0007_filter_revisions
Revises: 0006_protocol_v2
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0007_filter_revisions"
down_revision: str | Sequence[str] | None = "0006_protocol_v2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "filter_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "last_revision", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_head")),
    )
    op.create_table(
        "filter_revisions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("revision", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("key_seq", sa.Integer(), nullable=False),
        sa.Column("issued_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("value_count", sa.Integer(), nullable=False),
        sa.Column("live_cases", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("added", sa.LargeBinary(), nullable=True),
        sa.Column("removed", sa.LargeBinary(), nullable=True),
        sa.Column("value_list", sa.LargeBinary(), nullable=True),
        sa.Column("filler_ks", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_revisions")),
        sa.UniqueConstraint("revision", name=op.f("uq_filter_revisions_revision")),
    )
    with op.batch_alter_table("filter_revisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_filter_revisions_key_seq_sha256", ["key_seq", "sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("filter_revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_filter_revisions_key_seq_sha256")
    op.drop_table("filter_revisions")
    op.drop_table("filter_head")
