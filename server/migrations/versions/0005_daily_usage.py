"""daily usage: the daily quotas count in one row per organisation and UTC day

`daily_usage` replaces counting over `checks` (the check quota) and over `oprf_evaluations` (the
evaluation quota): a check's quota decision becomes one conditional upsert whose cost does not
grow through the day, and the row is what concurrent requests serialise on instead of a lock on
the organisation. Today's usage is carried over from the old tables, so an upgrade in the middle
of a day does not hand every organisation a fresh quota. `oprf_evaluations` held nothing else
(who evaluated how many elements is in the audit trail as `oprf.evaluate`) and is dropped, as is
`ix_checks_org_id_at`, which only the quota read. `ix_cases_id_status_retention_until` covers
the join a check makes from each bucket entry to its case's status and retention date.

Revision ID: 0005_daily_usage
Revises: 0004_quotas_retention
Create Date: 2026-11-29 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0005_daily_usage"
down_revision: str | Sequence[str] | None = "0004_quotas_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daily_usage",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("evaluated_elements", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_daily_usage_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", "day", name=op.f("pk_daily_usage")),
    )
    _carry_over_today()
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_index("ix_checks_org_id_at")
    with op.batch_alter_table("oprf_evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_oprf_evaluations_org_id_at")
    op.drop_table("oprf_evaluations")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cases_id_status_retention_until", ["id", "status", "retention_until"], unique=False
        )


def _carry_over_today() -> None:
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date(), time(), UTC)
    since = sa.bindparam("since", midnight, type_=server.db.UTCDateTime(timezone=True))
    bind = op.get_bind()
    checks: dict[str, int] = dict(
        bind.execute(
            sa.text(
                "SELECT org_id, COUNT(*) FROM checks WHERE at >= :since GROUP BY org_id"
            ).bindparams(since)
        ).all()
    )
    elements: dict[str, int] = dict(
        bind.execute(
            sa.text(
                "SELECT org_id, SUM(element_count) FROM oprf_evaluations "
                "WHERE at >= :since GROUP BY org_id"
            ).bindparams(since)
        ).all()
    )
    for org_id in sorted(set(checks) | set(elements)):
        bind.execute(
            sa.text(
                "INSERT INTO daily_usage (org_id, day, checks, evaluated_elements) "
                "VALUES (:org_id, :day, :checks, :elements)"
            ),
            {
                "org_id": org_id,
                "day": now.date().isoformat(),
                "checks": int(checks.get(org_id) or 0),
                "elements": int(elements.get(org_id) or 0),
            },
        )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_id_status_retention_until")
    op.create_table(
        "oprf_evaluations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("principal_id", sa.String(length=36), nullable=False),
        sa.Column("at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("element_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_oprf_evaluations_org_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.id"],
            name=op.f("fk_oprf_evaluations_principal_id_principals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oprf_evaluations")),
    )
    with op.batch_alter_table("oprf_evaluations", schema=None) as batch_op:
        batch_op.create_index("ix_oprf_evaluations_org_id_at", ["org_id", "at"], unique=False)
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.create_index("ix_checks_org_id_at", ["org_id", "at"], unique=False)
    op.drop_table("daily_usage")
