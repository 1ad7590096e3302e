"""consent details sealed to the hiring member; the plaintext columns dropped

A consent row kept the HR system's applicant and position references, the signed form's unkeyed
SHA-256 and the self-declaration in the clear: with an HR system's applicant list, a stolen
database told which applicant a consent, and so a check or a match, was about. From now on the
SDK seals them to its own organisation's X25519 key (`protocol.consent_details`) and the server
stores only that fixed-size blob, `sealed_details`.

The server must not be able to read them later, so it cannot keep a key to seal them with: every
existing row is sealed here, once, to its organisation's X25519 public key as the directory
(`organisations.x25519_public_key`) has it, and the four columns are dropped. Such rows carry no
signature (the server never held a member's signing key) and open in the SDK as unsigned. A
consent of an organisation without an X25519 key in the directory stops the upgrade before
anything changes: register the organisation's key first (`refcheck admin org update`).

SQLite: the columns are dropped with `ALTER TABLE ... DROP COLUMN` (SQLite 3.35 or later), not by
rebuilding the table, which the checks and disclosure requests referencing it would forbid, with
`secure_delete` on. PostgreSQL: the table is rewritten (`CLUSTER`), since a dropped column's
values otherwise stay on disk. Neither reaches copies made before (backups, archived WAL).

Revision ID: 0010_sealed_consent_details
Revises: 0009_notifications
Create Date: 2026-12-09 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010_sealed_consent_details"
down_revision: str | Sequence[str] | None = "0009_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLAINTEXT = ("applicant_ref", "position_ref", "form_sha256", "self_declared_finding")


def _aware(value: datetime | str) -> datetime:
    """`consented_at` as read without the model's type: naive UTC on SQLite (sometimes text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sealed_rows(bind: sa.Connection) -> list[dict[str, object]]:
    """Every consent's details sealed to its organisation's directory key; raises, naming the
    organisations, when one has no key (before anything is changed)."""
    rows = list(
        bind.execute(
            sa.text(
                "SELECT c.id, c.applicant_ref, c.position_ref, c.form_sha256, "
                "c.self_declared_finding, c.purpose, c.consented_at, o.x25519_public_key, "
                "o.short_name FROM consents c JOIN organisations o ON o.id = c.org_id"
            )
        )
    )
    keyless = sorted({row.short_name for row in rows if not row.x25519_public_key})
    if keyless:
        raise RuntimeError(
            "consents cannot be sealed to their organisation: no X25519 public key in the "
            f"directory for {', '.join(keyless)}; register each one's key "
            "(refcheck admin org update) and run the upgrade again"
        )
    if not rows:
        return []
    from protocol.consent_details import ConsentDetails, seal_details
    from protocol.errors import InvalidInputError

    sealed = []
    for row in rows:
        try:
            details = ConsentDetails(
                applicant_ref=row.applicant_ref,
                position_ref=row.position_ref,
                form_sha256=row.form_sha256,
                self_declared_finding=bool(row.self_declared_finding),
                purpose=row.purpose,
                consented_at=_aware(row.consented_at),
            )
        except InvalidInputError as exc:
            # The message names the field and the rule, never the value.
            raise RuntimeError(f"consent {row.id} cannot be sealed: {exc}") from None
        public_key = bytes.fromhex(row.x25519_public_key)
        sealed.append(
            {"id": row.id, "sealed": seal_details(details, public_key, signing_seed=None)}
        )
    return sealed


def upgrade() -> None:
    bind = op.get_bind()
    sealed = _sealed_rows(bind)
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        # Rows rewritten below would otherwise leave their old bytes in the file's free space,
        # where a copy of the file still shows them.
        bind.exec_driver_sql("PRAGMA secure_delete = ON")
    # SQLite cannot make a column NOT NULL after the fact: it gets a default that every row
    # then overwrites (and that no insert relies on: the model always sets the column).
    op.add_column(
        "consents",
        sa.Column(
            "sealed_details",
            sa.LargeBinary(),
            nullable=not sqlite,
            server_default=sa.text("x''") if sqlite else None,
        ),
    )
    if sealed:
        bind.execute(sa.text("UPDATE consents SET sealed_details = :sealed WHERE id = :id"), sealed)
    left = bind.execute(
        sa.text(
            "SELECT count(*) FROM consents "
            "WHERE sealed_details IS NULL OR length(sealed_details) = 0"
        )
    ).scalar_one()
    if left:
        raise RuntimeError(f"{left} consents were left unsealed; nothing was changed")
    if not sqlite:
        op.alter_column("consents", "sealed_details", nullable=False)
    for name in _PLAINTEXT:
        op.drop_column("consents", name)
    if not sqlite:
        # PostgreSQL drops a column in its catalogue only: the old values stay in every tuple,
        # and the UPDATE above left the old row versions behind too. CLUSTER writes the table
        # afresh (dropped columns as nulls, no dead versions) and the old file goes at commit.
        op.execute("CLUSTER consents USING pk_consents")
        op.execute("ALTER TABLE consents SET WITHOUT CLUSTER")


def downgrade() -> None:
    # The server cannot open what was sealed: the old columns come back holding placeholders
    # and the sealed details go with their column (restore a backup to keep them).
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    placeholders: dict[str, tuple[sa.types.TypeEngine[Any], sa.TextClause]] = {
        "applicant_ref": (sa.String(length=128), sa.text("'sealed'")),
        "position_ref": (sa.String(length=128), sa.text("'sealed'")),
        "form_sha256": (sa.String(length=64), sa.text("'" + "0" * 64 + "'")),
        # SQLite keeps booleans as 0 and 1.
        "self_declared_finding": (sa.Boolean(), sa.text("false" if not sqlite else "0")),
    }
    for name, (type_, default) in placeholders.items():
        op.add_column("consents", sa.Column(name, type_, nullable=False, server_default=default))
        if not sqlite:
            op.alter_column("consents", name, server_default=None)
    op.drop_column("consents", "sealed_details")
