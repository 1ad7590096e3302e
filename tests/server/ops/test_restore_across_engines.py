"""Moving a network between engines by a backup and a restore (docs/operations.md, "Backups and
the restore drill"): a secretariat that began on SQLite (`make run`) restores its backup into
PostgreSQL, and a PostgreSQL backup restores into SQLite.

Both ways: register through the real server and SDK, back up, restore into the other engine,
and then every table holds the same rows (binary columns and instants exact), `audit verify`
passes, the first registration still matches a check through the real app and the network goes
on (new registrations, whose audit entries need the sequence moved past the copied rows).
Refused: a target database that is not empty, an archive whose tables are not those of its
revision. A failure half-way through the copy leaves the target as it was (empty, and a second
restore into it succeeds).

The PostgreSQL databases run in Asia/Jakarta time: an instant copied as a wall time without its
offset would move by seven hours, and the row comparison would see it.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.pwhash.argon2id as argon2id
import pytest
from sqlalchemy import MetaData, create_engine, inspect, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

import server.backup as backup
from client_sdk import CheckStatus, Client
from server.backup import BackupError, restore_backup, write_backup
from server.settings import Settings
from tests.databases import postgres_server_url
from tests.server.ops.support import (
    PASSPHRASE,
    Deployment,
    check_status,
    deployment,
    person,
    register,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        postgres_server_url() is None, reason="REFCHECK_TEST_DATABASE_URL is not set"
    ),
]

MOVES = [
    pytest.param("sqlite", "postgresql", id="sqlite-to-postgresql"),
    pytest.param("postgresql", "sqlite", id="postgresql-to-sqlite"),
]
OTHER = {"sqlite": "postgresql", "postgresql": "sqlite"}
FAST: dict[str, Any] = {
    "opslimit": argon2id.OPSLIMIT_INTERACTIVE,
    "memlimit": argon2id.MEMLIMIT_INTERACTIVE,
}


def _url(net: Deployment) -> str:
    return net.database_url or f"sqlite:///{net.data_dir / 'refcheck.db'}"


def _settings(net: Deployment) -> Settings:
    if net.database_url is None:
        return Settings(data_dir=net.data_dir)
    return Settings(data_dir=net.data_dir, database_url=net.database_url)


def _jakarta(net: Deployment) -> None:
    """Sessions of this PostgreSQL database read and write wall times in UTC+7."""
    if net.database_url is None:
        return
    engine = create_engine(net.database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar_one()
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Jakarta'"))
    finally:
        engine.dispose()


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (the migration revision included), as the engine gives it back,
    instants in UTC, in a fixed order (PostgreSQL and SQLite collate text differently)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            metadata = MetaData()
            metadata.reflect(conn)
            found: dict[str, list[tuple[Any, ...]]] = {}
            for name, table in metadata.tables.items():
                columns = sorted(table.columns, key=lambda c: c.name)
                rows = [
                    tuple((c.name, _normal(row[c.name])) for c in columns)
                    for row in conn.execute(select(table)).mappings()
                ]
                found[name] = sorted(rows, key=repr)
            return found
    finally:
        engine.dispose()


def _tables(url: str) -> list[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            return sorted(found.get_table_names()) + sorted(found.get_sequence_names())
    finally:
        engine.dispose()


@dataclass
class Source:
    net: Deployment
    archive: Path


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Source]]:
    """A network on the given engine (made once): one person registered through the server and
    checked by the other organisation, a checkpoint, and a backup (`refcheck-server backup`)."""
    made: dict[str, Source] = {}
    with ExitStack() as stack:

        def make(backend: str) -> Source:
            if backend in made:
                return made[backend]
            root = tmp_path_factory.mktemp(f"from-{backend}")
            net = stack.enter_context(deployment(root, "old", backend))
            _jakarta(net)
            net.init()
            pins = root / "pins.json"
            with net.serve():
                with Client.from_credentials_file(
                    net.credentials("org-a-focal"), pin_file=pins
                ) as a:
                    register(a, person(1))
                with Client.from_credentials_file(net.credentials("org-b-hr"), pin_file=pins) as hr:
                    assert check_status(hr, person(1)) == CheckStatus.MATCH
            net.cli("audit", "checkpoint", "--data-dir", str(net.data_dir), *net.db_args())
            archive = root / "network.rcb"
            net.cli(
                "backup", "--data-dir", str(net.data_dir), "--out", str(archive), *net.db_args()
            )
            made[backend] = Source(net, archive)
            return made[backend]

        yield make


@pytest.mark.parametrize(("origin", "destination"), MOVES)
def test_a_backup_restores_into_the_other_engine_and_the_network_goes_on(
    tmp_path: Path, sources: Callable[[str], Source], origin: str, destination: str
) -> None:
    source = sources(origin)
    old = source.net
    # The new machine listens where the old one did: the members' credentials name that address.
    with deployment(tmp_path, "new", destination, port=old.port) as new:
        _jakarta(new)
        restored = new.cli(
            "restore", str(source.archive), "--data-dir", str(new.data_dir), *new.db_args()
        )
        assert "audit trail intact" in restored.stdout
        assert f"{origin}, revision" in restored.stdout

        # Every table, every row, every value: counts first (the clearer message), then rows.
        before, after = _rows(_url(old)), _rows(_url(new))
        assert {t: len(r) for t, r in after.items()} == {t: len(r) for t, r in before.items()}
        for table in ("cases", "pseudonyms", "consents", "checks", "audit_entries"):
            assert before[table], f"the story left {table} empty: it proves nothing there"
        assert after == before
        # The comparison sees one changed byte or one moved instant.
        changed = dict(before)
        pseudonym = dict(changed["pseudonyms"][0])
        pseudonym["p_hat"] = bytes([pseudonym["p_hat"][0] ^ 1]) + pseudonym["p_hat"][1:]
        changed["pseudonyms"] = [tuple(pseudonym.items()), *changed["pseudonyms"][1:]]
        assert after != changed

        verified = new.cli("audit", "verify", "--data-dir", str(new.data_dir), *new.db_args())
        assert "audit trail intact" in verified.stdout

        pins = tmp_path / "pins-new.json"
        with new.serve():
            with Client.from_credentials_file(old.credentials("org-b-hr"), pin_file=pins) as hr:
                assert check_status(hr, person(1)) == CheckStatus.MATCH
                assert check_status(hr, person(3)) == CheckStatus.NO_MATCH
                with Client.from_credentials_file(
                    old.credentials("org-a-focal"), pin_file=pins
                ) as a:
                    register(a, person(2))
                assert check_status(hr, person(2)) == CheckStatus.MATCH
        new.cli("audit", "checkpoint", "--data-dir", str(new.data_dir), *new.db_args())
        again = new.cli("audit", "verify", "--data-dir", str(new.data_dir), *new.db_args())
        assert "audit trail intact" in again.stdout


@pytest.mark.parametrize(("origin", "destination"), MOVES)
def test_instants_keep_their_moment_across_engines_and_would_move_without_utc(
    tmp_path: Path,
    sources: Callable[[str], Source],
    origin: str,
    destination: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = sources(origin)
    before = _rows(_url(source.net))
    with deployment(tmp_path, "kept", destination) as kept:
        _jakarta(kept)
        restore_backup(_settings(kept), source.archive, PASSPHRASE.encode())
        assert _rows(_url(kept)) == before
    # The bad case: values written as they come, instants as wall times without their offset.
    monkeypatch.setattr(backup, "_fit", lambda value, kind: value)
    with deployment(tmp_path, "moved", destination) as moved:
        _jakarta(moved)
        restore_backup(_settings(moved), source.archive, PASSPHRASE.encode())
        shifted = _rows(_url(moved))
        assert shifted["audit_entries"] != before["audit_entries"]
        assert {t: len(r) for t, r in shifted.items()} == {t: len(r) for t, r in before.items()}


def test_postgresql_sequences_continue_after_the_rows_copied_from_sqlite(
    tmp_path: Path, sources: Callable[[str], Source], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = sources("sqlite")

    def next_seq_and_top(url: str) -> tuple[int, int]:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                top = conn.execute(text("SELECT max(seq) FROM audit_entries")).scalar_one()
                nxt = conn.execute(text("SELECT nextval('audit_entries_seq')")).scalar_one()
                return int(nxt), int(top)
        finally:
            engine.dispose()

    with deployment(tmp_path, "moved", "postgresql") as moved:
        restore_backup(_settings(moved), source.archive, PASSPHRASE.encode())
        nxt, top = next_seq_and_top(_url(moved))
        assert nxt == top + 1
    # The bad case: without moving them, the next audit entry would take number 1 again.
    monkeypatch.setattr(backup, "_reset_sequences", lambda conn: None)
    with deployment(tmp_path, "stuck", "postgresql") as stuck:
        restore_backup(_settings(stuck), source.archive, PASSPHRASE.encode())
        nxt, top = next_seq_and_top(_url(stuck))
        assert nxt <= top


@pytest.mark.parametrize("origin", ["sqlite", "postgresql"])
def test_a_target_database_that_is_not_empty_is_refused_and_left_alone(
    tmp_path: Path, sources: Callable[[str], Source], origin: str
) -> None:
    source = sources(origin)
    with deployment(tmp_path, "used", OTHER[origin]) as used:
        if used.database_url is not None:
            engine = create_engine(used.database_url, poolclass=NullPool)
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE operator_notes (note text)"))
                conn.execute(text("INSERT INTO operator_notes VALUES ('keep me')"))
            engine.dispose()
            message = "not empty .*operator_notes"
        else:
            used.data_dir.mkdir(parents=True)
            db = sqlite3.connect(used.data_dir / "refcheck.db")
            db.execute("CREATE TABLE operator_notes (note text)")
            db.execute("INSERT INTO operator_notes VALUES ('keep me')")
            db.commit()
            db.close()
            message = "refcheck.db exists"
        with pytest.raises(BackupError, match=message):
            restore_backup(_settings(used), source.archive, PASSPHRASE.encode())
        assert _rows(_url(used)) == {"operator_notes": [(("note", "keep me"),)]}
        assert not (used.data_dir / "server").exists()
        # By the command an operator runs: exit 1, the reason on stderr.
        refused = used.cli(
            "restore",
            str(source.archive),
            "--data-dir",
            str(used.data_dir),
            *used.db_args(),
            check=False,
        )
        assert refused.returncode == 1 and "restore" in refused.stderr
        assert "not empty" in refused.stderr or "exists" in refused.stderr


@pytest.mark.parametrize(("origin", "destination"), MOVES)
def test_a_failure_half_way_through_the_copy_leaves_the_target_as_it_was(
    tmp_path: Path,
    sources: Callable[[str], Source],
    origin: str,
    destination: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = sources(origin)
    name = "_copy_table" if origin == "sqlite" else "_load_table"
    real = getattr(backup, name)
    written: list[int] = []

    def failing(*args: Any) -> int:
        # Every table up to the audit trail goes in; then the disk "fills up".
        if sum(written) > 0 and len(written) >= 8:
            raise OperationalError("INSERT", {}, Exception("could not extend file: disk full"))
        written.append(real(*args))
        return written[-1]

    monkeypatch.setattr(backup, name, failing)
    with deployment(tmp_path, "target", destination) as target:
        with pytest.raises(BackupError, match="could not be restored .*disk full.*left as it was"):
            restore_backup(_settings(target), source.archive, PASSPHRASE.encode())
        assert sum(written) > 0, "the failure came before any row was written"
        # As it was: no table, no sequence, no database file, no key file.
        if target.database_url is not None:
            assert _tables(target.database_url) == []
        else:
            assert sorted(p.name for p in target.data_dir.iterdir()) == ["server"]
        assert not any((target.data_dir / "server").iterdir())
        # ...so the operator just runs it again.
        monkeypatch.setattr(backup, name, real)
        restore_backup(_settings(target), source.archive, PASSPHRASE.encode())
        assert _rows(_url(target)) == _rows(_url(source.net))


def _archive_altered(tmp_path: Path, source: Source, sql: str) -> Path:
    """A backup of a copy of `source`'s SQLite network with `sql` run on its database first."""
    copy = tmp_path / "copy"
    shutil.copytree(source.net.data_dir, copy)
    db = sqlite3.connect(copy / "refcheck.db")
    db.execute(sql)
    db.commit()
    db.close()
    archive = tmp_path / "altered.rcb"
    write_backup(Settings(data_dir=copy), archive, PASSPHRASE.encode(), **FAST)
    return archive


def test_an_archive_whose_tables_are_not_those_of_its_revision_is_refused(
    tmp_path: Path, sources: Callable[[str], Source]
) -> None:
    archive = _archive_altered(tmp_path, sources("sqlite"), "CREATE TABLE local_extras (note text)")
    with deployment(tmp_path, "target", "postgresql") as target:
        with pytest.raises(BackupError, match="only in the archive: local_extras"):
            restore_backup(_settings(target), archive, PASSPHRASE.encode())
        assert target.database_url is not None
        assert _tables(target.database_url) == []


@pytest.mark.parametrize("destination", ["sqlite", "postgresql"])
def test_an_archive_at_a_revision_this_version_does_not_know_is_refused_in_words(
    tmp_path: Path, sources: Callable[[str], Source], destination: str
) -> None:
    """A backup written by a newer refcheck: a clear refusal naming the revision, not Alembic's
    traceback, and the target left as it was."""
    archive = _archive_altered(
        tmp_path, sources("sqlite"), "UPDATE alembic_version SET version_num = 'fffffffffff0'"
    )
    with deployment(tmp_path, "target", destination) as target:
        with pytest.raises(BackupError, match="revision fffffffffff0, which this version"):
            restore_backup(_settings(target), archive, PASSPHRASE.encode())
        if target.database_url is not None:
            assert _tables(target.database_url) == []
        else:
            assert not (target.data_dir / "refcheck.db").exists()
