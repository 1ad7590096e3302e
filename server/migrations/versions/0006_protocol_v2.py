"""protocol v2: entries without buckets, kinds or counts; checks keep their evaluations

Converts a version-1 database in place (docs/protocol.md, "What changed from version 1"):
- every stored pseudonym `P` becomes `P̂ = w·P` with the version-2 tag and a handle re-sealed
  under the version-2 handle key and padded to 256 bytes, its kind and strength moved inside;
- every case gets exactly `keys_per_check` entries: its real ones (cut by the fixed priority
  strong, exact, variant when a version-1 case had more) and verifiable pads, inserted in random
  order;
- the `bucket`, `kind`, `strength`, `org_id` and `key_id` columns of `pseudonyms`, the case's
  `key_id` and `pseudonym_count`, and the check's `key_count` are dropped;
- `oprf_keys` (signed announcements, filled at first start), `oprf_current` (the current-key
  row that a rotation's commit sets) and `check_claims` are created;
  checks gain `key_seq`, `evaluated` and `rerun_of`.

Nobody registers anything again: the same people still match. Converting needs the OPRF key file
(`skS` and `w`): `refcheck-server migrate --data-dir D` passes it, after giving a version-1 key
file its `w`. A database holding pseudonyms without it is refused before anything changes.

Revision ID: 0006_protocol_v2
Revises: 0005_daily_usage
Create Date: 2026-12-07 09:10:00
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0006_protocol_v2"
down_revision: str | Sequence[str] | None = "0005_daily_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RANK = {"strong": 0, "exact": 1, "variant": 2}


def _convert_pseudonyms(bind: sa.Connection) -> list[dict[str, Any]]:
    """The version-2 rows of every stored version-1 pseudonym, with pads; [] when none."""
    old = list(
        bind.execute(
            sa.text(
                "SELECT p.id, p.case_id, p.kind, p.strength, p.element, o.id, o.short_name "
                "FROM pseudonyms p JOIN cases c ON c.id = p.case_id "
                "JOIN organisations o ON o.id = c.org_id"
            )
        )
    )
    if not old:
        return []
    from protocol.codes import PADDING_KIND
    from protocol.entry import Handle, evaluate_inputs, pad_input, seal_handle, tag
    from protocol.keyops import multiply
    from server.keys import read_oprf_keys

    config = op.get_context().config
    attributes: dict[str, Any] = dict(config.attributes) if config is not None else {}
    key_dir = attributes.get("key_dir")
    if key_dir is None:
        raise RuntimeError(
            "this database holds version-1 pseudonyms: run `refcheck-server migrate --data-dir "
            "D` so that the migration can read the OPRF key file"
        )
    keys = list(read_oprf_keys(Path(key_dir)).values())
    if len(keys) != 1:
        raise RuntimeError("converting version-1 pseudonyms needs exactly one OPRF key file")
    secret, wrap = keys[0].secret, keys[0].wrap
    keys_per_check = int(attributes.get("keys_per_check", 32))
    by_case: dict[str, list[Any]] = {}
    for row in old:
        by_case.setdefault(row[1], []).append(row)
    out: list[dict[str, Any]] = []
    for case_id, rows in by_case.items():
        # The same fixed priority as `derive_keys`: strongest kept when a case had more keys.
        rows.sort(key=lambda r: _RANK.get(r[3], 3))
        kept = rows[:keys_per_check]
        org_id, org_name = kept[0][5], kept[0][6]
        labelled = [(r[0], bytes(r[4]), r[2], r[3]) for r in kept]
        pads = list(range(len(kept), keys_per_check))
        points = evaluate_inputs(secret, [pad_input(case_id, i) for i in pads])
        labelled += [(str(uuid.uuid4()), p, PADDING_KIND, "variant") for p in points]
        secrets.SystemRandom().shuffle(labelled)
        for entry_id, p, kind, strength in labelled:
            handle = Handle(
                entry_id=entry_id,
                case_id=case_id,
                holder_org_id=org_id,
                holder_org_name=org_name,
                kind=kind,
                strength=strength,
            )
            out.append(
                {
                    "id": entry_id,
                    "case_id": case_id,
                    "key_seq": 1,
                    "p_hat": multiply(wrap, p),
                    "tag": tag(p),
                    "sealed_handle": seal_handle(p, handle),
                }
            )
    return out


def _create_pseudonyms() -> sa.Table:
    table = op.create_table(
        "pseudonyms",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("key_seq", sa.Integer(), nullable=False),
        sa.Column("p_hat", sa.LargeBinary(length=32), nullable=False),
        sa.Column("tag", sa.LargeBinary(length=16), nullable=False),
        sa.Column("sealed_handle", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_pseudonyms_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pseudonyms")),
    )
    with op.batch_alter_table("pseudonyms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pseudonyms_case_id"), ["case_id"], unique=False)
        batch_op.create_index("ix_pseudonyms_key_seq_tag", ["key_seq", "tag"], unique=False)
    assert table is not None
    return table


def upgrade() -> None:
    bind = op.get_bind()
    converted = _convert_pseudonyms(bind)

    with op.batch_alter_table("pseudonyms", schema=None) as batch_op:
        batch_op.drop_index("ix_pseudonyms_key_id_bucket")
        batch_op.drop_index(batch_op.f("ix_pseudonyms_case_id"))
    op.drop_table("pseudonyms")
    table = _create_pseudonyms()
    if converted:
        op.bulk_insert(table, converted)

    # In place, not by batch mode's copy-and-rename: on SQLite that drops `cases`, and with
    # foreign keys on its cascades would delete every entry just converted and every
    # idempotency record, and null the case of every disclosure request. (SQLite drops a plain
    # column natively since 3.35.)
    op.drop_column("cases", "key_id")
    op.drop_column("cases", "pseudonym_count")

    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_column("key_count")
        batch_op.add_column(
            sa.Column("key_seq", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.add_column(sa.Column("evaluated", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("rerun_of", sa.String(length=36), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_checks_rerun_of"), ["rerun_of"])
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.alter_column("key_seq", server_default=None)

    op.create_table(
        "check_claims",
        sa.Column("check_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["check_id"],
            ["checks.id"],
            name=op.f("fk_check_claims_check_id_checks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("check_id", "entry_id", name=op.f("pk_check_claims")),
    )
    op.create_table(
        "oprf_keys",
        sa.Column("key_seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("registration_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("announcement", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_seq", name=op.f("pk_oprf_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_oprf_keys_key_id")),
    )
    op.create_table(
        "oprf_current",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key_seq", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("switched_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oprf_current")),
    )


def downgrade() -> None:
    # Version 2 keeps no `P`, kind or bucket in the database: there is nothing to go back to.
    raise RuntimeError("protocol version 2 cannot be downgraded; restore a backup instead")
