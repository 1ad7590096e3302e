"""Deleted rows leave no readable trace in the SQLite file: a withdrawn case's entries and a
purged request are overwritten, whatever the SQLite build's own default (`secure_delete`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from server.db import make_engine


def test_a_deleted_value_is_not_left_in_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "erase.db"
    engine = make_engine(f"sqlite:///{path}")
    marker = b"REFCHECK-DELETED-MARKER-" * 40
    try:
        with engine.begin() as conn:
            assert conn.execute(text("PRAGMA secure_delete")).scalar() == 1
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"))
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": marker})
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM t"))
    finally:
        engine.dispose()  # the last connection closing checkpoints the WAL into the file
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    assert marker[:48] not in data


def test_without_secure_delete_the_value_would_stay(tmp_path: Path) -> None:
    """The control: the same steps with the pragma off leave the value in the file, so the
    test above can fail."""
    path = tmp_path / "keep.db"
    engine = make_engine(f"sqlite:///{path}")
    marker = b"REFCHECK-KEPT-MARKER-" * 40
    try:
        with engine.begin() as conn:
            conn.execute(text("PRAGMA secure_delete=OFF"))
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"))
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": marker})
            conn.execute(text("DELETE FROM t"))
    finally:
        engine.dispose()  # the last connection closing checkpoints the WAL into the file
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    assert marker[:40] in data
