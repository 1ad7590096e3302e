"""Migration 0010 on a populated database: every consent's plaintext details are sealed to its
organisation's X25519 key from the directory and the plaintext columns are dropped, on SQLite and
on PostgreSQL; and no copy of the plaintext is left in the database's files."""

from __future__ import annotations

import os
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.public
import nacl.signing
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from protocol.consent_details import SEALED_SIZE, NotSealedToThisKey, open_details
from server.checks.models import Check
from server.db import Base, make_engine
from server.migrate import alembic_config, current_revisions, upgrade
from server.registry.models import Organisation, Principal
from tests.databases import (
    TEST_DATABASE_ENV,
    create_postgres_database,
    dispose_database_url,
    drop_postgres_database,
    fresh_database_url,
)
from tests.factories import make_plaintext_consent

REVISION = "0010_sealed_consent_details"
_script = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(REVISION)
assert _script is not None and isinstance(_script.down_revision, str)
BEFORE: str = _script.down_revision
PLAINTEXT = {"applicant_ref", "position_ref", "form_sha256", "self_declared_finding"}


@dataclass
class Member:
    org_id: str
    principal_id: str
    x25519: nacl.public.PrivateKey
    # Consent id -> the plaintext details the row held.
    consents: dict[str, dict[str, Any]]


def _insert(session: Session, model: type[Base], **values: Any) -> None:
    """A row of `model`'s table with the columns the database has at this revision (a column
    added by a later migration is left out), bound with the model's column types."""
    name = model.__tablename__
    present = {c["name"] for c in sa.inspect(session.connection()).get_columns(name)}
    table = sa.Table(
        name,
        sa.MetaData(),
        *(sa.Column(c.name, c.type) for c in model.__table__.columns if c.name in present),
    )
    session.execute(table.insert().values({k: v for k, v in values.items() if k in present}))


def _member(session: Session, short_name: str, *, with_key: bool = True) -> Member:
    now = datetime.now(UTC)
    x25519 = nacl.public.PrivateKey.generate()
    org_id, principal_id = str(uuid.uuid4()), str(uuid.uuid4())
    _insert(
        session,
        Organisation,
        id=org_id,
        legal_name=f"{short_name} foundation",
        short_name=short_name,
        country="ID",
        org_type="ingo",
        membership="member",
        status="active",
        data_sharing_agreement=True,
        may_register=True,
        may_check=True,
        focal_points=[],
        x25519_public_key=bytes(x25519.public_key).hex() if with_key else None,
        ed25519_public_key=bytes(nacl.signing.SigningKey.generate().verify_key).hex(),
        created_at=now,
        updated_at=now,
    )
    _insert(
        session,
        Principal,
        id=principal_id,
        org_id=org_id,
        name=f"{short_name} HR system",
        kind="service",
        roles=["hr_checker"],
        auth_public_key="ab" * 32,
        active=True,
        created_at=now,
    )
    return Member(org_id, principal_id, x25519, {})


def _consent(session: Session, member: Member, **details: Any) -> str:
    """A consent as revisions before 0010 stored it, and a check under it (so the table the
    migration alters is referenced, as in a working database)."""
    at = datetime.now(UTC).replace(microsecond=123456) - timedelta(days=len(member.consents))
    values = {
        "applicant_ref": f"APP-{uuid.uuid4().hex[:10]}",
        "position_ref": "POS-WASH-07",
        "form_sha256": uuid.uuid4().hex * 2,
        "self_declared_finding": False,
        **details,
    }
    org = Organisation(id=member.org_id)
    consent_id = make_plaintext_consent(
        session, org, member.principal_id, consented_at=at, purpose="recruitment", **values
    )
    _insert(
        session,
        Check,
        id=str(uuid.uuid4()),
        org_id=member.org_id,
        consent_id=consent_id,
        principal_id=member.principal_id,
        at=at + timedelta(minutes=5),
        key_seq=1,
    )
    member.consents[consent_id] = {**values, "consented_at": at}
    return consent_id


def _populate(url: str) -> tuple[Member, Member]:
    upgrade(url, BEFORE)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            a, b = _member(session, "org-a"), _member(session, "org-b")
            _consent(session, a, applicant_ref="SECRET-A-0001", self_declared_finding=True)
            _consent(session, a, applicant_ref="SECRET-A-0002", position_ref="POS-HEALTH-2")
            for i in range(40):
                _consent(session, b, applicant_ref=f"SECRET-B-{i:04d}")
            session.commit()
    finally:
        engine.dispose()
    return a, b


def _rows(url: str, sql: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))
    finally:
        engine.dispose()


def _consented_at(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _assert_sealed(url: str, members: tuple[Member, ...]) -> None:
    engine = make_engine(url)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("consents")}
    finally:
        engine.dispose()
    assert "sealed_details" in columns and not PLAINTEXT & columns
    rows = {
        r.id: r
        for r in _rows(url, "SELECT id, purpose, consented_at, sealed_details FROM consents")
    }
    assert {len(bytes(r.sealed_details)) for r in rows.values()} == {SEALED_SIZE}
    for member in members:
        for consent_id, plaintext in member.consents.items():
            row = rows[consent_id]
            opened = open_details(
                bytes(row.sealed_details),
                bytes(member.x25519),
                bytes(32),  # not used: the migration signs nothing
                purpose=row.purpose,
                consented_at=_consented_at(row.consented_at),
            )
            assert not opened.signed
            details = opened.details
            assert {k: getattr(details, k) for k in PLAINTEXT} == {
                k: plaintext[k] for k in PLAINTEXT
            }
            assert details.consented_at == plaintext["consented_at"]
            # Only the organisation's own key opens them.
            other = next(m for m in members if m is not member)
            with pytest.raises(NotSealedToThisKey):
                open_details(
                    bytes(row.sealed_details),
                    bytes(other.x25519),
                    bytes(32),
                    purpose=row.purpose,
                    consented_at=_consented_at(row.consented_at),
                )
    # The checks under the consents are still there, still pointing at them.
    assert _rows(url, "SELECT count(*) FROM checks c JOIN consents k ON k.id = c.consent_id")[0][
        0
    ] == sum(len(m.consents) for m in members)


def _sqlite_files(url: str) -> bytes:
    path = Path(sa.make_url(url).database or "")
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _secure_delete_off(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.execute("PRAGMA secure_delete = OFF")


@pytest.mark.parametrize("secure_delete", ["build default", "off"])
def test_sqlite_consents_are_sealed_to_their_members_and_no_plaintext_is_left(
    tmp_path: Path, secure_delete: str
) -> None:
    """`off`: the upgrade runs on a SQLite whose connections do not overwrite what they delete
    (builds without Debian's default): the migration turns it on for itself, or the rewritten
    rows' old bytes would stay in the file's free space."""
    url = f"sqlite:///{tmp_path / 'refcheck.db'}"
    members = _populate(url)
    assert b"SECRET-B-0039" in _sqlite_files(url)  # the search finds plaintext
    if secure_delete == "off":
        event.listen(Engine, "connect", _secure_delete_off)
    try:
        upgrade(url)
    finally:
        if event.contains(Engine, "connect", _secure_delete_off):
            event.remove(Engine, "connect", _secure_delete_off)
    _assert_sealed(url, members)
    files = _sqlite_files(url)
    left = [
        ref
        for member in members
        for plaintext in member.consents.values()
        for ref in (plaintext["applicant_ref"], plaintext["form_sha256"])
        if ref.encode() in files
    ]
    assert left == []


def test_a_member_without_a_directory_key_stops_the_upgrade_before_anything_changes(
    tmp_path: Path,
) -> None:
    url = fresh_database_url(tmp_path, "refcheck_keyless")
    try:
        upgrade(url, BEFORE)
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                keyless = _member(session, "org-keyless", with_key=False)
                _consent(session, keyless)
                session.commit()
        finally:
            engine.dispose()
        with pytest.raises(RuntimeError, match="org-keyless") as caught:
            upgrade(url)
        assert "APP-" not in str(caught.value)
        engine = make_engine(url)
        try:
            assert current_revisions(engine) == frozenset({BEFORE})
            columns = {c["name"] for c in sa.inspect(engine).get_columns("consents")}
        finally:
            engine.dispose()
        assert PLAINTEXT <= columns and "sealed_details" not in columns
    finally:
        dispose_database_url(url)


def test_downgrade_brings_the_columns_back_with_placeholders(tmp_path: Path) -> None:
    """The server cannot open what it sealed: a downgrade restores the old shape, not the
    details."""
    url = fresh_database_url(tmp_path, "refcheck_consent_down")
    try:
        _populate(url)
        upgrade(url, REVISION)
        command.downgrade(alembic_config(url), BEFORE)
        rows = _rows(url, "SELECT applicant_ref, form_sha256, self_declared_finding FROM consents")
        assert {(r[0], r[1], bool(r[2])) for r in rows} == {("sealed", "0" * 64, False)}
        upgrade(url, REVISION)
        assert {r[0] for r in _rows(url, "SELECT length(sealed_details) FROM consents")} == {
            SEALED_SIZE
        }
    finally:
        dispose_database_url(url)


@pytest.mark.postgres
def test_postgresql_consents_are_sealed_and_the_table_rewritten_without_plaintext() -> None:
    """Skipped only when no PostgreSQL is configured. PostgreSQL drops a column in its catalogue
    only; after the migration the table's file on disk holds none of the old values."""
    server_url = os.environ.get(TEST_DATABASE_ENV)
    if not server_url:
        pytest.skip(f"{TEST_DATABASE_ENV} is not set")
    url = create_postgres_database(server_url, "refcheck_pg_consents")
    try:
        members = _populate(url)
        upgrade(url)
        _assert_sealed(url, members)
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("CHECKPOINT"))
                on_disk = conn.execute(
                    sa.text("SELECT pg_read_binary_file(pg_relation_filepath('consents'))")
                ).scalar_one()
        finally:
            engine.dispose()
        assert len(on_disk) > 0
        left = [
            ref
            for member in members
            for plaintext in member.consents.values()
            for ref in (plaintext["applicant_ref"], plaintext["form_sha256"])
            if ref.encode() in bytes(on_disk)
        ]
        assert left == []
    finally:
        drop_postgres_database(server_url, url)
