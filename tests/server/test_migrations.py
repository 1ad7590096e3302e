"""Migrations are deploy contracts: they create exactly the models, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import nacl.secret
import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from protocol.hazmat.ristretto255 import scalar_mult, scalar_mult_base
from protocol.identity import derive_keys
from protocol.oprf import MODE_VOPRF, VOPRFClient, generate_key_pair, unblind
from server.all_models import Base
from server.app import create_app
from server.auth.permissions import Role
from server.cases.models import IdempotencyRecord, Pseudonym
from server.checks.models import Check
from server.cli import app as cli_app
from server.db import UTCDateTime, make_engine, new_id
from server.disclosures.models import DisclosureRequest
from server.keys import create_keys, key_id_for, load_keys
from server.migrate import (
    alembic_config,
    check,
    current_revisions,
    head_revisions,
    is_current,
    upgrade,
)
from server.registry.models import Principal
from server.settings import Settings
from tests.blindflow import check_person, record_consent
from tests.databases import (
    TEST_DATABASE_ENV,
    create_postgres_database,
    dispose_database_url,
    drop_postgres_database,
    fresh_database_url,
)
from tests.factories import AppClient, auth_headers, make_consent, make_org, make_principal
from tests.server.blindmatch.people import OTHER, REGISTERED, SPELLING_VARIANTS
from tests.server.blindmatch.stored import open_entries, pad_points

V1_HEAD = "0005_daily_usage"
V2_BASE = "0006_protocol_v2"

# Version 1's tables as it wrote them (migrations 0002 to 0005), for the tests that build a
# version-1 database: the models are version 2's.
_V1 = sa.MetaData()
V1_CASES = sa.Table(
    "cases",
    _V1,
    sa.Column("id", sa.String(36)),
    sa.Column("org_id", sa.String(36)),
    sa.Column("registered_by", sa.String(36)),
    sa.Column("category", sa.String(40)),
    sa.Column("child_victim", sa.Boolean()),
    sa.Column("finding", sa.String(40)),
    sa.Column("sanction", sa.String(40)),
    sa.Column("finding_date", sa.Date()),
    sa.Column("legal_basis", sa.String(40)),
    sa.Column("retention_until", sa.Date()),
    sa.Column("mou_reference", sa.String(64)),
    sa.Column("subject_notified_on", sa.Date()),
    sa.Column("key_id", sa.String(16)),
    sa.Column("status", sa.String(16)),
    sa.Column("pseudonym_count", sa.Integer()),
    sa.Column("created_at", UTCDateTime(timezone=True)),
    sa.Column("withdrawn_at", UTCDateTime(timezone=True)),
    sa.Column("withdrawal_reason", sa.String(32)),
)
V1_PSEUDONYMS = sa.Table(
    "pseudonyms",
    _V1,
    sa.Column("id", sa.String(36)),
    sa.Column("case_id", sa.String(36)),
    sa.Column("org_id", sa.String(36)),
    sa.Column("key_id", sa.String(16)),
    sa.Column("kind", sa.String(40)),
    sa.Column("strength", sa.String(8)),
    sa.Column("bucket", sa.Integer()),
    sa.Column("element", sa.LargeBinary(32)),
    sa.Column("tag", sa.LargeBinary(16)),
    sa.Column("sealed_handle", sa.LargeBinary()),
)
V1_REQUESTS = sa.Table(
    "disclosure_requests",
    _V1,
    sa.Column("id", sa.String(36)),
    sa.Column("requester_org_id", sa.String(36)),
    sa.Column("requester_principal_id", sa.String(36)),
    sa.Column("holder_org_id", sa.String(36)),
    sa.Column("case_id", sa.String(36)),
    sa.Column("entry_id", sa.String(36)),
    sa.Column("consent_id", sa.String(36)),
    sa.Column("state", sa.String(16)),
    sa.Column("created_at", UTCDateTime(timezone=True)),
    sa.Column("due_at", UTCDateTime(timezone=True)),
)
V1_IDEMPOTENCY = sa.Table(
    "case_idempotency_keys",
    _V1,
    sa.Column("id", sa.String(36)),
    sa.Column("org_id", sa.String(36)),
    sa.Column("key", sa.String(128)),
    sa.Column("request_sha256", sa.String(64)),
    sa.Column("case_id", sa.String(36)),
    sa.Column("created_at", UTCDateTime(timezone=True)),
)
V1_CHECKS = sa.Table(
    "checks",
    _V1,
    sa.Column("id", sa.String(36)),
    sa.Column("org_id", sa.String(36)),
    sa.Column("consent_id", sa.String(36)),
    sa.Column("principal_id", sa.String(36)),
    sa.Column("at", UTCDateTime(timezone=True)),
    sa.Column("key_count", sa.Integer()),
)


def test_models_have_no_drift_from_the_migrations(database_url):
    # `alembic check`: a model changed without a migration fails here, on whichever backend
    # the suite runs.
    check(database_url)


def test_there_is_exactly_one_migration_head():
    assert len(head_revisions()) == 1


def test_migrations_upgrade_an_empty_database_to_the_models(tmp_path: Path):
    url = fresh_database_url(tmp_path, "refcheck_migrate")
    try:
        engine = make_engine(url)
        try:
            assert not is_current(engine)
            upgrade(url)
            assert is_current(engine)
            tables = set(inspect(engine).get_table_names())
            assert set(Base.metadata.tables) <= tables
        finally:
            engine.dispose()
    finally:
        dispose_database_url(url)


def test_version_1_migrations_downgrade_to_empty_and_upgrade_again(tmp_path: Path):
    url = fresh_database_url(tmp_path, "refcheck_downgrade")
    try:
        upgrade(url, V1_HEAD)
        command.downgrade(alembic_config(url), "base")
        engine = make_engine(url)
        try:
            assert current_revisions(engine) == frozenset()
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        finally:
            engine.dispose()
        upgrade(url)
        check(url)
    finally:
        dispose_database_url(url)


def test_migrations_after_protocol_v2_downgrade_to_it_and_upgrade_again(tmp_path: Path):
    url = fresh_database_url(tmp_path, "refcheck_downgrade_v2")
    try:
        upgrade(url)
        command.downgrade(alembic_config(url), V2_BASE)
        engine = make_engine(url)
        try:
            assert current_revisions(engine) == frozenset({V2_BASE})
        finally:
            engine.dispose()
        upgrade(url)
        check(url)
    finally:
        dispose_database_url(url)


def test_protocol_v2_cannot_be_downgraded_to_version_1(tmp_path: Path):
    """Version 2 keeps no `P`, kind or bucket: there is nothing to go back to, so the downgrade
    is refused (restore a backup instead) and the database stays at version 2."""
    url = fresh_database_url(tmp_path, "refcheck_no_downgrade")
    try:
        upgrade(url, V2_BASE)
        with pytest.raises(RuntimeError, match="cannot be downgraded"):
            command.downgrade(alembic_config(url), V1_HEAD)
        engine = make_engine(url)
        try:
            assert current_revisions(engine) == frozenset({V2_BASE})
            assert "check_claims" in inspect(engine).get_table_names()
        finally:
            engine.dispose()
    finally:
        dispose_database_url(url)


def test_foundation_revision_id_is_stable():
    # Later migrations name it as their down_revision; renaming it breaks every deployment.
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revision = script.get_revision("0001_foundation")
    assert revision is not None and revision.down_revision is None


@pytest.mark.postgres
def test_migrations_upgrade_an_empty_postgresql_database():
    """Skipped only when no PostgreSQL is configured; configured but unreachable fails."""
    server_url = os.environ.get(TEST_DATABASE_ENV)
    if not server_url:
        pytest.skip(f"{TEST_DATABASE_ENV} is not set")
    url = create_postgres_database(server_url, "refcheck_pg_migrate")
    try:
        upgrade(url)
        engine = make_engine(url)
        try:
            assert is_current(engine)
            assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        check(url)
    finally:
        drop_postgres_database(server_url, url)


def test_daily_usage_migration_carries_over_todays_checks_and_evaluations(tmp_path: Path):
    """An upgrade in the middle of a day keeps what each organisation used today (yesterday's
    use is not carried), so it does not hand everyone a fresh daily quota."""
    url = fresh_database_url(tmp_path, "refcheck_usage")
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    try:
        upgrade(url, "0004_quotas_retention")
        engine = make_engine(url)
        try:
            with Session(engine, expire_on_commit=False) as session:
                # The tables the factories fill are the same at 0004 as now.
                orgs = [make_org(session, name) for name in ("usage-1", "usage-2")]
                principals = [make_principal(session, org, [Role.HR_CHECKER])[0] for org in orgs]
                consent = make_consent(session, orgs[0], principals[0].id)
                for at in (now, now, yesterday):
                    session.execute(
                        V1_CHECKS.insert().values(
                            id=new_id(),
                            org_id=orgs[0].id,
                            consent_id=consent.id,
                            principal_id=principals[0].id,
                            at=at,
                            key_count=8,
                        )
                    )
                for who, at, count in ((1, now, 5), (1, now, 7), (0, yesterday, 9)):
                    session.execute(
                        text(
                            "INSERT INTO oprf_evaluations (id, org_id, principal_id, at, "
                            "element_count) VALUES (:id, :org, :p, :at, :n)"
                        ),
                        {
                            "id": new_id(),
                            "org": orgs[who].id,
                            "p": principals[who].id,
                            "at": at,
                            "n": count,
                        },
                    )
                session.commit()
                ids = [org.id for org in orgs]
            upgrade(url)
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT org_id, day, checks, evaluated_elements FROM daily_usage")
                ).all()
        finally:
            engine.dispose()
        today = now.date().isoformat()
        assert sorted(tuple(r) for r in rows) == sorted(
            [(ids[0], today, 2, 0), (ids[1], today, 0, 12)]
        )
    finally:
        dispose_database_url(url)


# --- a populated version-1 database, migrated ----------------------------------------------
#
# Version 1's derivations, copied from its `protocol/pseudonym.py` (gone with version 2) as the
# reference for what a version-1 database holds: the pseudonym `P` itself (`element`), an
# unkeyed 12-bit `bucket` of each key, a tag and a compact-JSON handle under version-1 labels.

V1_BUCKET_BITS = 12


def v1_bucket(value: bytes) -> int:
    digest = hashlib.sha256(b"refcheck/v1/bucket" + value).digest()
    return int.from_bytes(digest[:3], "big") >> (24 - V1_BUCKET_BITS)


def v1_tag(p: bytes) -> bytes:
    return hashlib.sha256(b"refcheck/v1/tag" + p).digest()[:16]


def v1_seal_handle(p: bytes, handle: dict[str, str]) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"refcheck/v1/handle")
    box = nacl.secret.SecretBox(key.derive(p))
    return bytes(box.encrypt(json.dumps(handle, separators=(",", ":")).encode()))


def v1_pseudonym(secret: bytes, value: bytes) -> bytes:
    """`P` as a version-1 focal point got it: blinded, evaluated by the server, unblinded."""
    client = VOPRFClient(scalar_mult_base(secret))
    blind, blinded = client.blind(value)
    return unblind(blind, scalar_mult(secret, blinded))


@dataclass
class V1Network:
    """What the version-1 database holds, and what a version-2 test needs to use it."""

    data_dir: Path
    secret: bytes
    holder_id: str
    active_case: str
    withdrawn_case: str
    entry_ids: dict[str, str]  # kind of REGISTERED's key -> its version-1 pseudonym id
    checker_id: str
    checker_key: Ed25519PrivateKey
    request_id: str


def _write_v1_key_dir(data_dir: Path) -> bytes:
    key_dir = data_dir / "server"
    key_dir.mkdir(parents=True, mode=0o700)
    secret, _public = generate_key_pair(MODE_VOPRF)
    # Version 1's key files: the OPRF key (skS alone, 32 bytes), the token and audit keys.
    for name, raw in (
        ("oprf.key", secret),
        ("token-signing.key", os.urandom(32)),
        ("audit-checkpoint.key", os.urandom(32)),
    ):
        path = key_dir / name
        path.write_text(raw.hex() + "\n")
        path.chmod(0o600)
    return secret


def _v1_case(org_id: str, registrar: str, today: date, **values: Any) -> dict[str, Any]:
    finding = today - timedelta(days=60)
    row: dict[str, Any] = {
        "id": new_id(),
        "org_id": org_id,
        "registered_by": registrar,
        "category": "sexual_abuse",
        "child_victim": False,
        "finding": "substantiated",
        "sanction": "dismissal",
        "finding_date": finding,
        "legal_basis": "legitimate_interests",
        "retention_until": finding.replace(year=finding.year + 5),
        "mou_reference": "MoU-2026-01",
        "subject_notified_on": finding + timedelta(days=7),
        "status": "active",
        "created_at": datetime.now(UTC) - timedelta(days=40),
        "withdrawn_at": None,
        "withdrawal_reason": None,
    }
    row.update(values)
    return row


def populate_v1(url: str, data_dir: Path) -> V1Network:
    """A database at 0005 with rows as version 1 wrote them: org-a holds REGISTERED's case (one
    pseudonym per key) and a withdrawn case (no pseudonyms, as withdrawal left it); org-b's HR
    checker ran a check. And the version-1 key files."""
    upgrade(url, V1_HEAD)
    secret = _write_v1_key_dir(data_dir)
    key_id = key_id_for(scalar_mult_base(secret))
    today = datetime.now(UTC).date()
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            holder = make_org(session, "org-a", today=today)
            checking = make_org(session, "org-b", today=today)
            focal, _ = make_principal(session, holder, [Role.FOCAL_POINT])
            checker, checker_key = make_principal(session, checking, [Role.HR_CHECKER])
            consent = make_consent(session, checking, checker.id)
            keys = derive_keys(REGISTERED)
            active = _v1_case(holder.id, focal.id, today, key_id=key_id, pseudonym_count=len(keys))
            withdrawn = _v1_case(
                holder.id,
                focal.id,
                today,
                key_id=key_id,
                pseudonym_count=0,
                status="withdrawn",
                withdrawn_at=datetime.now(UTC) - timedelta(days=3),
                withdrawal_reason="appeal_upheld",
            )
            session.execute(V1_CASES.insert(), [active, withdrawn])
            entry_ids: dict[str, str] = {}
            rows = []
            for key in keys:
                p = v1_pseudonym(secret, key.value)
                entry_id = new_id()
                entry_ids[f"{key.kind}/{key.value.hex()}"] = entry_id
                handle = {
                    "entry_id": entry_id,
                    "case_id": active["id"],
                    "holder_org_id": holder.id,
                    "holder_org_name": holder.short_name,
                    "kind": key.kind,
                    "strength": key.strength.value,
                }
                rows.append(
                    {
                        "id": entry_id,
                        "case_id": active["id"],
                        "org_id": holder.id,
                        "key_id": key_id,
                        "kind": key.kind,
                        "strength": key.strength.value,
                        "bucket": v1_bucket(key.value),
                        "element": p,
                        "tag": v1_tag(p),
                        "sealed_handle": v1_seal_handle(p, handle),
                    }
                )
            session.execute(V1_PSEUDONYMS.insert(), rows)
            session.execute(
                V1_CHECKS.insert().values(
                    id=new_id(),
                    org_id=checking.id,
                    consent_id=consent.id,
                    principal_id=checker.id,
                    at=datetime.now(UTC) - timedelta(days=1),
                    key_count=len(keys),
                )
            )
            # An open disclosure request about the case and the registration's idempotency
            # record: both must come through the migration with their case.
            request_id = new_id()
            session.execute(
                V1_REQUESTS.insert().values(
                    id=request_id,
                    requester_org_id=checking.id,
                    requester_principal_id=checker.id,
                    holder_org_id=holder.id,
                    case_id=active["id"],
                    entry_id=rows[0]["id"],
                    consent_id=consent.id,
                    state="requested",
                    created_at=datetime.now(UTC) - timedelta(days=1),
                    due_at=datetime.now(UTC) + timedelta(days=9),
                )
            )
            session.execute(
                V1_IDEMPOTENCY.insert().values(
                    id=new_id(),
                    org_id=holder.id,
                    key="v1-registration",
                    request_sha256="ab" * 32,
                    case_id=active["id"],
                    created_at=datetime.now(UTC) - timedelta(days=40),
                )
            )
            session.commit()
            return V1Network(
                data_dir=data_dir,
                secret=secret,
                holder_id=holder.id,
                active_case=active["id"],
                withdrawn_case=withdrawn["id"],
                entry_ids=entry_ids,
                checker_id=checker.id,
                checker_key=checker_key,
                request_id=request_id,
            )
    finally:
        engine.dispose()


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


async def _check_migrated(url: str, v1: V1Network) -> None:
    """The version-2 server on the migrated database: the same people still match."""
    settings = Settings(
        environment="test", data_dir=v1.data_dir, database_url=url, run_background_jobs=False
    )
    engine = make_engine(url)
    try:
        app = create_app(settings, bind=engine)
        ctx = app.state.ctx
        ctx.policy = ctx.policy.model_copy(update={"filter_publish_seconds": 0})
        async with AppClient(app) as client:
            with Session(engine) as session:
                checker = session.get(Principal, v1.checker_id)
                assert checker is not None
            headers = await auth_headers(client, checker, v1.checker_key)
            consent = await record_consent(
                client,
                headers,
                now=ctx.now(),
                purpose="rescreening",
                max_checks=len(SPELLING_VARIANTS) + 2,
            )
            for person in (REGISTERED, *SPELLING_VARIANTS):
                outcome = await check_person(client, headers, consent["id"], person)
                assert outcome.response.status_code == 200, outcome.response.text
                assert outcome.case_ids == {v1.active_case}
                assert outcome.holder_org_ids == {v1.holder_id}
                for found in outcome.matches:
                    # Each match is the version-1 entry of that key, under its id and kind.
                    ref = f"{found.key.kind}/{found.key.value.hex()}"
                    assert found.handle.entry_id == v1.entry_ids[ref]
                    assert (found.handle.kind, found.handle.strength) == (
                        found.key.kind,
                        found.key.strength.value,
                    )
            stranger = await check_person(client, headers, consent["id"], OTHER)
            assert stranger.response.status_code == 200 and stranger.matches == []
    finally:
        engine.dispose()


def _migrate_and_check(url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = populate_v1(url, data_dir)
    for name in ("REFCHECK_DATA_DIR", "REFCHECK_POLICY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REFCHECK_DATABASE_URL", url)
    result = CliRunner().invoke(cli_app, ["migrate", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output

    key_dir = data_dir / "server"
    [key_file] = key_dir.glob("oprf-*.key")
    assert not (key_dir / "oprf.key").exists()
    keys = load_keys(key_dir)
    assert keys.oprf_secret == v1.secret, "the version-1 skS is kept: the entries were made with it"
    engine = make_engine(url)
    try:
        assert is_current(engine)
        assert _columns(engine, "pseudonyms") == {
            "id",
            "case_id",
            "key_seq",
            "p_hat",
            "tag",
            "sealed_handle",
        }
        assert not {"key_id", "pseudonym_count"} & _columns(engine, "cases")
        assert "key_count" not in _columns(engine, "checks")
        assert {"key_seq", "evaluated", "rerun_of"} <= _columns(engine, "checks")
        with Session(engine) as session:
            per_case = dict(
                session.execute(
                    select(Pseudonym.case_id, func.count()).group_by(Pseudonym.case_id)
                ).all()
            )
            # Every live case has exactly keys_per_check entries; the withdrawn one none.
            assert per_case == {v1.active_case: 32}
            opened = open_entries(session, keys, v1.active_case)
            real = [e for e in opened if e.handle.kind != "padding"]
            assert {e.row.id for e in real} == set(v1.entry_ids.values())
            # Pads are the verifiable ones of the slots after the real keys.
            pads = {e.p for e in opened if e.handle.kind == "padding"}
            assert pads == set(pad_points(keys, v1.active_case, range(len(real), 32)))
            # No version-1 tag is left, and no stored value is a version-1 P.
            tags = {bytes(e.row.tag) for e in opened}
            assert not {v1_tag(e.p) for e in real} & tags
            assert not {e.p for e in opened} & {bytes(e.row.p_hat) for e in opened}
            migrated_check = session.scalars(select(Check)).one()
            assert (migrated_check.key_seq, migrated_check.evaluated) == (1, None)
            # What refers to the case came through with it.
            request = session.get(DisclosureRequest, v1.request_id)
            assert request is not None and request.case_id == v1.active_case
            assert request.state == "requested"
            assert session.scalars(
                select(IdempotencyRecord.case_id).where(IdempotencyRecord.key == "v1-registration")
            ).all() == [v1.active_case]
    finally:
        engine.dispose()
    anyio.run(_check_migrated, url, v1)


def test_a_populated_version_1_database_migrates_and_the_same_people_still_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url = fresh_database_url(tmp_path, "refcheck_v1")
    try:
        _migrate_and_check(url, tmp_path / "data", monkeypatch)
    finally:
        dispose_database_url(url)


@pytest.mark.postgres
def test_a_populated_version_1_postgresql_database_migrates_and_still_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Skipped only when no PostgreSQL is configured; configured but unreachable fails."""
    server_url = os.environ.get(TEST_DATABASE_ENV)
    if not server_url:
        pytest.skip(f"{TEST_DATABASE_ENV} is not set")
    url = create_postgres_database(server_url, "refcheck_pg_v1")
    try:
        _migrate_and_check(url, tmp_path / "data", monkeypatch)
    finally:
        drop_postgres_database(server_url, url)


def test_version_1_pseudonyms_are_not_migrated_without_the_key_file(tmp_path: Path):
    """Converting needs `skS` and `w`: without the key directory the migration refuses before
    it changes anything, so nothing is lost."""
    url = fresh_database_url(tmp_path, "refcheck_v1_nokey")
    try:
        v1 = populate_v1(url, tmp_path / "data")
        with pytest.raises(RuntimeError, match="refcheck-server migrate"):
            upgrade(url)
        engine = make_engine(url)
        try:
            assert current_revisions(engine) == frozenset({V1_HEAD})
            with engine.connect() as conn:
                count = conn.execute(
                    text("SELECT count(*) FROM pseudonyms WHERE case_id = :c"),
                    {"c": v1.active_case},
                ).scalar_one()
            assert count == len(derive_keys(REGISTERED))
        finally:
            engine.dispose()
    finally:
        dispose_database_url(url)


def test_a_version_1_case_with_more_keys_than_keys_per_check_keeps_the_strongest(
    tmp_path: Path,
):
    """The migration cuts a case by the same fixed priority as `derive_keys` (strong, exact,
    variant): here to 16 entries, which REGISTERED's 28 keys exceed."""
    url = fresh_database_url(tmp_path, "refcheck_v1_cut")
    try:
        v1 = populate_v1(url, tmp_path / "data")
        key_dir = tmp_path / "data" / "server"
        create_keys(key_dir)
        upgrade(url, key_dir=key_dir, keys_per_check=16)
        keys = load_keys(key_dir)
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                opened = open_entries(session, keys, v1.active_case)
        finally:
            engine.dispose()
        assert len(opened) == 16
        assert "padding" not in {e.handle.kind for e in opened}
        kept = {(e.handle.kind, e.handle.strength) for e in opened}
        everyone = derive_keys(REGISTERED)
        assert {
            (k.kind, k.strength.value) for k in everyone if k.strength.value != "variant"
        } <= kept
    finally:
        dispose_database_url(url)
