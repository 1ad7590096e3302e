"""Encrypted backups of a network server: one archive, the database and the key files together.

The database alone is useless without the key files (every stored entry is keyed by the OPRF
key file, docs/protocol.md), and the key files alone re-register nobody, so they are saved
together or not at all. `write_backup` writes:

* a **consistent database snapshot**: on SQLite through its online backup API (readers and
  writers go on meanwhile); on PostgreSQL as a logical dump of every table read in one
  `REPEATABLE READ, READ ONLY` transaction, so every table is seen at the same instant;
* **every key file** of the data directory (the OPRF keys, the registration key, the token and
  network signing keys and their history, the network id), read just after the snapshot was
  fixed, and checked to hold the OPRF key file the snapshot's current key names;
* the network policy file, for a lost disk.

Archive format (all integers big-endian)::

    b"RCBACKUP" | version (1) | opslimit (8) | memlimit (8) | salt (16) | nonce prefix (16)
    then frames: length (4) | SecretBox ciphertext of (last-frame flag (1) | up to 1 MiB)

The key is Argon2id (pynacl, `crypto_pwhash`) of the passphrase under the salt; frame `i` is
sealed with nonce `prefix || i` (8 bytes), so frames cannot be reordered or dropped, and the
flag of the last frame makes a truncated archive fail. A wrong passphrase, a changed header
(salt, limits, prefix) or any changed byte fails the first frame: nothing is written. The
plaintext is a sequence of members (`b"M" | name length (2) | name | chunks of length (4) |
data ... | length 0`), then `b"E"`: `manifest.json` first, then the key files, then the
database. Nothing of it ever touches the disk in the clear, on writing or on reading, except
the SQLite snapshot, made inside the (owner-only) data directory beside the live database and
removed at once.

`restore_backup` writes the key files into a new data directory and the database into a fresh
database (a new SQLite file there, or an empty PostgreSQL database the operator created), then
migrates it to the code's schema. The caller (`refcheck-server restore`) then verifies the audit
trail.

**Across engines.** Either archive restores into either engine (a secretariat that began on
SQLite moves to PostgreSQL by a backup and a restore). Both database members are portable: the
SQLite snapshot is a file any SQLite reads, and the PostgreSQL dump is rows of JSON with a codec
per column. Unless SQLite goes into SQLite (the snapshot file is then the database), Alembic
creates the schema at the archive's migration revision on the target and every table's rows are
copied into it in dependency order, timestamps as UTC instants and binary as bytes, in one
transaction with the schema itself on PostgreSQL; sequences then continue after the copied rows.
A failure at any point leaves the target database as it was. Restoring a SQLite archive into
PostgreSQL writes the snapshot, for as long as the copy takes, inside the new data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import sqlite3
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils
from sqlalchemy import (
    JSON,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from server.db import make_engine
from server.keys import oprf_key_file
from server.settings import LOCAL_POLICY_FILE, Settings

MAGIC = b"RCBACKUP"
VERSION = 1
_HEADER = struct.Struct(">8sBQQ16s16s")
_FRAME_LENGTH = struct.Struct(">I")
FRAME_BYTES = 1024 * 1024
_MAX_FRAME = FRAME_BYTES + 1 + nacl.secret.SecretBox.MACBYTES

#: Argon2id cost of a new archive: libsodium's "moderate" (about 2 s and 256 MiB here), so a
#: stolen archive costs an attacker that much per passphrase guess.
OPSLIMIT = argon2id.OPSLIMIT_MODERATE
MEMLIMIT = argon2id.MEMLIMIT_MODERATE
#: What a reader accepts from a header: a tampered header must not make a restore ask for
#: gigabytes of memory before the first frame fails to open.
_OPS_RANGE = (argon2id.OPSLIMIT_INTERACTIVE, argon2id.OPSLIMIT_SENSITIVE)
_MEM_RANGE = (argon2id.MEMLIMIT_INTERACTIVE, argon2id.MEMLIMIT_SENSITIVE)

MIN_PASSPHRASE_CHARS = 12
PASSPHRASE_ENV = "REFCHECK_BACKUP_PASSPHRASE"

DB_SQLITE = "database/refcheck.sqlite3"
DB_TABLE_PREFIX = "database/tables/"
KEY_PREFIX = "keys/"
POLICY_MEMBER = "config/network.toml"
MANIFEST = "manifest.json"
_INSERT_BATCH = 500


class BackupError(Exception):
    """The archive cannot be written or read, or the restore target is not fresh."""


# --- the passphrase ---------------------------------------------------------------------------


def read_passphrase(passphrase_file: Path | None) -> bytes:
    """The passphrase from `passphrase_file` (its first line) or `$REFCHECK_BACKUP_PASSPHRASE`.

    Never from the command line, where every user of the machine can read it (`ps`)."""
    if passphrase_file is not None:
        try:
            raw = passphrase_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise BackupError(f"cannot read the passphrase file {passphrase_file}: {exc}") from exc
        value = raw[0] if raw else ""
    else:
        value = os.environ.get(PASSPHRASE_ENV, "")
        if not value:
            raise BackupError(f"no passphrase: pass --passphrase-file FILE or set {PASSPHRASE_ENV}")
    if len(value) < MIN_PASSPHRASE_CHARS:
        raise BackupError(
            f"the backup passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"
        )
    return value.encode("utf-8")


# --- the encrypted frame stream ---------------------------------------------------------------


def _derive(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> nacl.secret.SecretBox:
    key = argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
    )
    return nacl.secret.SecretBox(key)


class _SealingWriter(io.RawIOBase):
    """A write-only stream that seals what it is given into frames on `out`."""

    def __init__(self, out: BinaryIO, passphrase: bytes, *, opslimit: int, memlimit: int) -> None:
        super().__init__()
        salt = nacl.utils.random(argon2id.SALTBYTES)
        self._prefix = nacl.utils.random(16)
        self._box = _derive(passphrase, salt, opslimit, memlimit)
        self._out = out
        self._buffer = bytearray()
        self._index = 0
        out.write(_HEADER.pack(MAGIC, VERSION, opslimit, memlimit, salt, self._prefix))

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = bytes(data)
        self._buffer += view
        while len(self._buffer) > FRAME_BYTES:
            self._frame(bytes(self._buffer[:FRAME_BYTES]), last=False)
            del self._buffer[:FRAME_BYTES]
        return len(view)

    def _frame(self, chunk: bytes, *, last: bool) -> None:
        nonce = self._prefix + self._index.to_bytes(8, "big")
        sealed = self._box.encrypt(bytes([1 if last else 0]) + chunk, nonce).ciphertext
        self._out.write(_FRAME_LENGTH.pack(len(sealed)) + sealed)
        self._index += 1

    def finish(self) -> None:
        self._frame(bytes(self._buffer), last=True)
        self._buffer.clear()


def _read_exact(src: IO[bytes], size: int) -> bytes:
    data = src.read(size)
    if len(data) != size:
        raise BackupError("the archive is truncated")
    return data


def _open_frames(src: BinaryIO, passphrase: bytes) -> Iterator[bytes]:
    """The plaintext of each frame, in order; BackupError on anything that does not open."""
    header = src.read(_HEADER.size)
    if len(header) != _HEADER.size or not header.startswith(MAGIC):
        raise BackupError("this is not a refcheck backup archive")
    _magic, version, opslimit, memlimit, salt, prefix = _HEADER.unpack(header)
    if version != VERSION:
        raise BackupError(f"archive format version {version} is not supported (this code: 1)")
    if not (_OPS_RANGE[0] <= opslimit <= _OPS_RANGE[1]) or not (
        _MEM_RANGE[0] <= memlimit <= _MEM_RANGE[1]
    ):
        raise BackupError("the archive's key derivation settings are out of range")
    box = _derive(passphrase, salt, opslimit, memlimit)
    index = 0
    while True:
        length_bytes = src.read(_FRAME_LENGTH.size)
        if not length_bytes:
            raise BackupError("the archive is truncated (its last part is missing)")
        if len(length_bytes) < _FRAME_LENGTH.size:
            raise BackupError("the archive is truncated")
        (length,) = _FRAME_LENGTH.unpack(length_bytes)
        if length > _MAX_FRAME:
            raise BackupError("the archive is damaged (a part is too long)")
        nonce = prefix + index.to_bytes(8, "big")
        try:
            plain = box.decrypt(_read_exact(src, length), nonce)
        except nacl.exceptions.CryptoError:
            if index == 0:
                raise BackupError(
                    "the archive does not open: wrong passphrase, or the archive was changed"
                ) from None
            raise BackupError(f"the archive was changed or damaged (part {index})") from None
        index += 1
        if not plain or plain[0] not in (0, 1):
            raise BackupError("the archive is damaged")
        yield plain[1:]
        if plain[0] == 1:
            if src.read(1):
                raise BackupError("the archive has data after its last part")
            return


class _FrameReader(io.RawIOBase):
    def __init__(self, frames: Iterator[bytes]) -> None:
        super().__init__()
        self._frames = frames
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._frames, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


# --- members inside the plaintext -------------------------------------------------------------


class _MemberWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    def member(self, name: str, chunks: Iterator[bytes] | list[bytes]) -> str:
        """Write one member; returns the SHA-256 of its data."""
        encoded = name.encode("utf-8")
        self._out.write(b"M" + len(encoded).to_bytes(2, "big") + encoded)
        digest = hashlib.sha256()
        for chunk in chunks:
            if chunk:
                digest.update(chunk)
                self._out.write(len(chunk).to_bytes(4, "big") + chunk)
        self._out.write(b"\x00\x00\x00\x00")
        return digest.hexdigest()

    def end(self) -> None:
        self._out.write(b"E")


def _members(stream: IO[bytes]) -> Iterator[tuple[str, Iterator[bytes]]]:
    """(name, its data chunks) in order; each member's chunks must be consumed before the next."""
    while True:
        kind = stream.read(1)
        if kind == b"E":
            return
        if kind != b"M":
            raise BackupError("the archive is damaged (no member where one should begin)")
        size = int.from_bytes(_read_exact(stream, 2), "big")
        name = _read_exact(stream, size).decode("utf-8")

        def chunks() -> Iterator[bytes]:
            while True:
                length = int.from_bytes(_read_exact(stream, 4), "big")
                if length == 0:
                    return
                yield _read_exact(stream, length)

        body = chunks()
        yield name, body
        for _rest in body:  # drain what the caller did not read
            pass


# --- the database snapshot --------------------------------------------------------------------


def _column_codec(column: Any) -> str:
    kind = column.type
    if isinstance(kind, DateTime):
        return "datetime"
    if isinstance(kind, Date):
        return "date"
    if isinstance(kind, LargeBinary):
        return "bytes"
    if isinstance(kind, JSON):
        return "json"
    if isinstance(kind, Numeric) and not isinstance(kind, Integer | Float):
        return "decimal"
    return "plain"


def _encode(value: Any, codec: str) -> Any:
    if value is None:
        return None
    if codec == "datetime":
        assert isinstance(value, datetime)
        return value.isoformat()
    if codec == "date":
        assert isinstance(value, date)
        return value.isoformat()
    if codec == "bytes":
        return bytes(value).hex()
    if codec == "decimal":
        return str(value)
    return value


def _decode(value: Any, codec: str) -> Any:
    if value is None:
        return None
    if codec == "datetime":
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if codec == "date":
        return date.fromisoformat(value)
    if codec == "bytes":
        return bytes.fromhex(value)
    if codec == "decimal":
        from decimal import Decimal

        return Decimal(value)
    return value


def _reflect(conn: Connection) -> MetaData:
    metadata = MetaData()
    metadata.reflect(conn)
    if "alembic_version" in metadata.tables:
        metadata.remove(metadata.tables["alembic_version"])
    return metadata


def _revision(conn: Connection) -> list[str]:
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return sorted(str(r) for r in rows)


def _snapshot_keys(conn: Connection) -> list[str]:
    """The OPRF key ids the snapshot needs the files of (the current one at least)."""
    return sorted(str(k) for k in conn.execute(text("SELECT key_id FROM oprf_current")).scalars())


def _table_chunks(conn: Connection, table: Table, codecs: dict[str, str]) -> Iterator[bytes]:
    names = [c.name for c in table.columns]
    order = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(
        select(table).order_by(*order)
    )
    lines: list[bytes] = []
    for row in result:
        values = [_encode(row[i], codecs[name]) for i, name in enumerate(names)]
        lines.append(json.dumps(values, separators=(",", ":")).encode() + b"\n")
        if len(lines) >= 1000:
            yield b"".join(lines)
            lines = []
    if lines:
        yield b"".join(lines)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(FRAME_BYTES):
            yield chunk


@dataclass
class BackupSummary:
    backend: str
    revision: list[str]
    network_id: str
    key_files: list[str]
    tables: dict[str, int] = field(default_factory=dict)


def _key_members(key_dir: Path) -> dict[str, bytes]:
    if not key_dir.is_dir():
        raise BackupError(f"{key_dir} holds no key files (is this the server's data dir?)")
    found = {
        p.name: p.read_bytes()
        for p in sorted(key_dir.iterdir())
        if p.is_file() and not p.name.endswith(".tmp") and not p.name.startswith(".")
    }
    if not found:
        raise BackupError(f"{key_dir} holds no key files (is this the server's data dir?)")
    return found


def _check_keys(keys: dict[str, bytes], needed: list[str]) -> None:
    if not needed and not any(name.startswith("oprf-") for name in keys):
        # A network whose current key was not read yet: its one key file is the current key.
        raise BackupError("the data dir has no OPRF key file: nothing written")
    missing = [k for k in needed if oprf_key_file(k) not in keys]
    if missing:
        raise BackupError(
            "the database's current OPRF key has no key file in the data dir "
            f"({', '.join(oprf_key_file(k) for k in missing)}): nothing written"
        )


def write_backup(
    settings: Settings,
    out: Path,
    passphrase: bytes,
    *,
    opslimit: int = OPSLIMIT,
    memlimit: int = MEMLIMIT,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BackupSummary:
    """Write one encrypted archive of the database and the key files to `out` (0600; refused if
    it exists). On any failure `out` is removed: a half-written archive is never left behind."""
    url = settings.effective_database_url
    engine = make_engine(url, poolclass=NullPool)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            sealer = _SealingWriter(fh, passphrase, opslimit=opslimit, memlimit=memlimit)
            buffered = io.BufferedWriter(sealer, buffer_size=FRAME_BYTES)
            writer = _MemberWriter(buffered)
            if engine.dialect.name == "sqlite":
                summary = _sqlite_backup(settings, engine, writer, now)
            elif engine.dialect.name == "postgresql":
                summary = _postgres_backup(settings, engine, writer, now)
            else:
                raise BackupError(f"backups of {engine.dialect.name} databases are not supported")
            writer.end()
            buffered.flush()
            sealer.finish()
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        raise
    finally:
        engine.dispose()
    return summary


def _manifest(
    settings: Settings,
    backend: str,
    revision: list[str],
    keys: dict[str, bytes],
    now: Callable[[], datetime],
    tables: dict[str, dict[str, str]] | None = None,
) -> tuple[bytes, BackupSummary]:
    network_id = keys.get("network-id", b"").decode("ascii", "replace").strip()
    document = {
        "format": "refcheck-backup",
        "version": VERSION,
        "created_at": now().isoformat(),
        "backend": backend,
        "revision": revision,
        "network_id": network_id,
        # Names and digests only: the keys themselves are members of their own.
        "key_files": {name: hashlib.sha256(data).hexdigest() for name, data in keys.items()},
        "policy_sha256": _sha256_file(settings.policy_file),
        "policy_in_data_dir": _own_policy(settings) is not None,
        "tables": tables or {},
    }
    summary = BackupSummary(backend, revision, network_id, sorted(keys))
    return json.dumps(document, indent=1).encode(), summary


def _write_common(
    writer: _MemberWriter, settings: Settings, manifest: bytes, keys: dict[str, bytes]
) -> None:
    writer.member(MANIFEST, [manifest])
    for name, data in keys.items():
        writer.member(KEY_PREFIX + name, [data])
    own = _own_policy(settings)
    if own is not None:
        writer.member(POLICY_MEMBER, [own.read_bytes()])


def _own_policy(settings: Settings) -> Path | None:
    """The network's own policy file when it lives in the data dir (`init --demo` writes one
    there); a policy kept elsewhere is the operator's configuration, named by its digest."""
    own = settings.data_dir / LOCAL_POLICY_FILE
    if own.is_file() and settings.policy_file.resolve() == own.resolve():
        return own
    return None


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _sqlite_backup(
    settings: Settings, engine: Engine, writer: _MemberWriter, now: Callable[[], datetime]
) -> BackupSummary:
    source_path = engine.url.database
    if not source_path or source_path == ":memory:" or not Path(source_path).exists():
        raise BackupError(f"no SQLite database at {source_path}")
    source = Path(source_path)
    # The snapshot sits beside the live database, under the same owner-only directory, for as
    # long as it takes to seal it into the archive.
    handle, snapshot_name = tempfile.mkstemp(
        prefix=".backup-", suffix=".sqlite3", dir=source.parent
    )
    os.close(handle)
    snapshot = Path(snapshot_name)
    try:
        src = sqlite3.connect(source)
        dst = sqlite3.connect(snapshot)
        try:
            # The online backup API: a consistent copy while the server goes on working (a
            # write in the middle restarts the copy of the pages it changed).
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        check = sqlite3.connect(snapshot)
        try:
            dst_version = [
                str(r[0]) for r in check.execute("SELECT version_num FROM alembic_version")
            ]
            needed = [str(r[0]) for r in check.execute("SELECT key_id FROM oprf_current")]
            counts = {
                str(name): int(check.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
                for (name,) in check.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            }
        finally:
            check.close()
        # Key files read after the snapshot: a rotation that switched before it wrote its key
        # file before switching, and the old file outlives the switch by the entry window.
        keys = _key_members(settings.server_key_dir)
        _check_keys(keys, needed)
        manifest, summary = _manifest(settings, "sqlite", sorted(dst_version), keys, now)
        _write_common(writer, settings, manifest, keys)
        writer.member(DB_SQLITE, _file_chunks(snapshot))
        summary.tables = counts
        return summary
    finally:
        snapshot.unlink(missing_ok=True)


def _postgres_backup(
    settings: Settings, engine: Engine, writer: _MemberWriter, now: Callable[[], datetime]
) -> BackupSummary:
    with engine.connect() as raw:
        conn = raw.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            # One snapshot for every table: the first statement of a REPEATABLE READ
            # transaction fixes it, and nothing this transaction reads changes afterwards.
            conn.execute(text("SET TRANSACTION READ ONLY"))
            revision = _revision(conn)
            needed = _snapshot_keys(conn)
            keys = _key_members(settings.server_key_dir)
            _check_keys(keys, needed)
            metadata = _reflect(conn)
            tables = list(metadata.sorted_tables)
            codecs = {t.name: {c.name: _column_codec(c) for c in t.columns} for t in tables}
            spec = {t.name: {c.name: codecs[t.name][c.name] for c in t.columns} for t in tables}
            manifest, summary = _manifest(settings, "postgresql", revision, keys, now, spec)
            _write_common(writer, settings, manifest, keys)
            for table in tables:
                count = conn.execute(select(func.count()).select_from(table)).scalar_one()
                summary.tables[table.name] = int(count)
                writer.member(
                    DB_TABLE_PREFIX + table.name, _table_chunks(conn, table, codecs[table.name])
                )
    return summary


# --- restore ----------------------------------------------------------------------------------


@dataclass
class RestoreSummary:
    backend: str
    revision: list[str]
    created_at: str
    network_id: str
    key_files: list[str]
    tables: dict[str, int] = field(default_factory=dict)
    policy_file: Path | None = None
    policy_sha256: str | None = None


def _write_key(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _check_fresh(settings: Settings) -> None:
    key_dir = settings.server_key_dir
    if key_dir.exists() and any(key_dir.iterdir()):
        raise BackupError(f"{key_dir} already holds files: restore into a new data directory")
    if not settings.database_url:
        path = settings.embedded_database_path
        for existing in (path, path.with_name(path.name + ".restoring")):
            if existing.exists():
                raise BackupError(f"{existing} exists: restore into a new data directory")
        return
    engine = make_engine(settings.database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            held = sorted(found.get_table_names()) + sorted(found.get_sequence_names())
    finally:
        engine.dispose()
    if held:
        shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        raise BackupError(
            f"the target database is not empty (it holds {len(held)} tables or sequences: "
            f"{shown}); restore only into a new, empty database (createdb): nothing was written"
        )


def restore_backup(settings: Settings, archive: Path, passphrase: bytes) -> RestoreSummary:
    """Restore `archive` into `settings`' data directory and database, both fresh, and migrate
    the database to this code's schema. The audit trail is verified by the caller.

    Either engine's archive restores into either engine: a network that began on SQLite moves
    to PostgreSQL this way (and back). Across engines, or from PostgreSQL, the schema is created
    at the archive's migration revision and every row copied in one transaction
    (`_fresh_database`): a failure leaves the target database as it was."""
    _check_fresh(settings)
    target_backend = "postgresql" if settings.database_url else "sqlite"
    if settings.database_url and not settings.database_url.startswith("postgresql"):
        raise BackupError("restore writes to SQLite (no database URL) or PostgreSQL")
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with archive.open("rb") as src:
        stream = io.BufferedReader(_FrameReader(_open_frames(src, passphrase)), FRAME_BYTES)
        members = _members(stream)
        first = next(members, None)
        if first is None or first[0] != MANIFEST:
            raise BackupError("the archive has no manifest")
        manifest = json.loads(b"".join(first[1]))
        if manifest.get("format") != "refcheck-backup":
            raise BackupError("the archive has no valid manifest")
        if manifest["backend"] not in ("sqlite", "postgresql"):
            raise BackupError(f"the archive holds a {manifest['backend']} database")
        from server.migrate import known_revision

        revision = list(manifest["revision"])
        unknown = [r for r in revision if not known_revision(r)]
        if unknown:
            raise BackupError(
                f"the archive's database is at migration revision {','.join(unknown)}, which this "
                "version of refcheck does not know: restore it with the version that wrote it "
                "(or a newer one)"
            )
        summary = RestoreSummary(
            backend=manifest["backend"],
            revision=revision,
            created_at=str(manifest["created_at"]),
            network_id=str(manifest["network_id"]),
            key_files=sorted(manifest["key_files"]),
            policy_sha256=manifest.get("policy_sha256"),
        )
        key_dir = settings.server_key_dir
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        created: list[Path] = []
        try:
            with contextlib.ExitStack() as stack:
                target: Connection | None = None
                for name, chunks in members:
                    if name.startswith(KEY_PREFIX):
                        file_name = name.removeprefix(KEY_PREFIX)
                        if "/" in file_name or file_name.startswith(".") or not file_name:
                            raise BackupError("the archive names a key file outside the key dir")
                        data = b"".join(chunks)
                        if hashlib.sha256(data).hexdigest() != manifest["key_files"].get(file_name):
                            raise BackupError(f"key file {file_name} does not match the manifest")
                        _write_key(key_dir / file_name, data)
                        created.append(key_dir / file_name)
                    elif name == POLICY_MEMBER:
                        path = settings.data_dir / LOCAL_POLICY_FILE
                        if not path.exists():
                            _write_key(path, b"".join(chunks))
                            created.append(path)
                            summary.policy_file = path
                    elif name == DB_SQLITE and target_backend == "sqlite":
                        # SQLite into SQLite: the snapshot file is the database.
                        created.append(settings.embedded_database_path)
                        _restore_sqlite(settings, chunks)
                    elif name == DB_SQLITE:
                        if target is not None:
                            raise BackupError("the archive holds two databases")
                        target = stack.enter_context(
                            _fresh_database(settings, summary.revision, created)
                        )
                        summary.tables = _copy_sqlite_snapshot(settings, chunks, target)
                    elif name.startswith(DB_TABLE_PREFIX):
                        if target is None:
                            target = stack.enter_context(
                                _fresh_database(settings, summary.revision, created)
                            )
                            _check_tables(target, set(manifest["tables"]), summary.revision)
                        table = name.removeprefix(DB_TABLE_PREFIX)
                        with _table_errors(table):
                            summary.tables[table] = _load_table(
                                target, table, manifest["tables"][table], chunks
                            )
                    else:
                        raise BackupError(f"the archive holds an unknown member {name}")
                if stream.read(1):
                    raise BackupError("the archive has data after its end")
                written = {p.name for p in created if p.parent == key_dir}
                if written != set(manifest["key_files"]):
                    raise BackupError("the archive lacks key files its manifest names")
                # Leaving the stack commits the database's one transaction.
        except BaseException:
            for path in created:
                for extra in ("", "-wal", "-shm", "-writer"):
                    path.with_name(path.name + extra).unlink(missing_ok=True)
            raise
    _migrate_to_head(settings, summary.policy_file or settings.policy_file)
    return summary


def _restore_sqlite(settings: Settings, chunks: Iterator[bytes]) -> None:
    path = settings.embedded_database_path
    tmp = path.with_name(path.name + ".restoring")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        _check_integrity(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_integrity(path: Path) -> None:
    check = sqlite3.connect(path)
    try:
        if check.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError("the archive's SQLite database fails its integrity check")
    finally:
        check.close()


@contextlib.contextmanager
def _fresh_database(
    settings: Settings, revision: list[str], created: list[Path]
) -> Iterator[Connection]:
    """A connection, in the one transaction of the restore, to the target database holding the
    schema at `revision` (the archive's rows fit the tables as they were) and no row.

    PostgreSQL: Alembic creates the schema inside that transaction (DDL is transactional
    there), so a restore that fails at any point leaves the database empty, ready for another
    try. SQLite: the database is built in `refcheck.db.restoring` and moved into place only
    after the commit; a failure removes it. On success, PostgreSQL's sequences continue after
    the restored rows (SQLite's rowids do by themselves)."""
    from server.migrate import upgrade

    if len(revision) != 1:
        raise BackupError("the archive's database has no single migration revision")
    if settings.database_url:
        engine = make_engine(settings.database_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                with _database_errors():
                    transaction = conn.begin()
                    try:
                        upgrade(settings.database_url, revision[0], connection=conn)
                        _clear_seeded_rows(conn)
                        yield conn
                        _reset_sequences(conn)
                        transaction.commit()
                    finally:
                        if transaction.is_active:
                            transaction.rollback()
        finally:
            engine.dispose()
        return
    final = settings.embedded_database_path
    building = final.with_name(final.name + ".restoring")
    os.close(os.open(building, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    created.append(building)
    url = f"sqlite:///{building}"
    engine = make_engine(url, poolclass=NullPool)
    try:
        with _database_errors():
            upgrade(url, revision[0])
            with engine.connect() as conn, conn.begin():
                _clear_seeded_rows(conn)
                yield conn
    finally:
        engine.dispose()
    created.append(final)
    os.replace(building, final)
    # The writer queue's lock file of the database while it was built (`server.sqlite_writers`).
    Path(f"{building}-writer").unlink(missing_ok=True)


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    """A database error in the middle of a restore as a BackupError naming it, not a traceback."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise BackupError(
            f"the database could not be restored ({_cause(exc)}); "
            "the target database was left as it was"
        ) from exc


@contextlib.contextmanager
def _table_errors(table: str) -> Iterator[None]:
    """A database error while a table is written, as a BackupError naming the table."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise BackupError(
            f"table {table} could not be restored ({_cause(exc)}); "
            "the target database was left as it was"
        ) from exc


def _cause(exc: SQLAlchemyError) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def _clear_seeded_rows(conn: Connection) -> None:
    """Rows a migration seeded (a lock row, a counter) are in the archive too."""
    for table in reversed(_reflect(conn).sorted_tables):
        conn.execute(table.delete())


def _check_tables(conn: Connection, archived: set[str], revision: list[str]) -> None:
    schema = set(_reflect(conn).tables)
    if archived != schema:
        extra, missing = sorted(archived - schema), sorted(schema - archived)
        raise BackupError(
            f"the archive's tables are not those of its revision {','.join(revision)} "
            f"(only in the archive: {', '.join(extra) or 'none'}; "
            f"only in the schema: {', '.join(missing) or 'none'})"
        )


def _copy_sqlite_snapshot(
    settings: Settings, chunks: Iterator[bytes], target: Connection
) -> dict[str, int]:
    """Copy a SQLite snapshot of the archive into `target`, table by table in dependency order.

    The snapshot is written, for as long as the copy takes, inside the new (owner-only) data
    directory, as `backup` wrote it beside the live database, and read with SQLAlchemy."""
    handle, snapshot_name = tempfile.mkstemp(
        prefix=".restore-", suffix=".sqlite3", dir=settings.data_dir
    )
    snapshot = Path(snapshot_name)
    try:
        with os.fdopen(handle, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        _check_integrity(snapshot)
        engine = create_engine(f"sqlite:///{snapshot}", poolclass=NullPool)
        try:
            with engine.connect() as source:
                source_tables = _reflect(source).tables
                target_tables = _reflect(target)
                revision = _revision(source)
                _check_tables(target, set(source_tables), revision)
                counts: dict[str, int] = {}
                for table in target_tables.sorted_tables:
                    origin = source_tables[table.name]
                    if {c.name for c in origin.columns} != {c.name for c in table.columns}:
                        raise BackupError(
                            f"table {table.name} of the archive does not fit the schema of its "
                            f"revision {','.join(revision)}"
                        )
                    with _table_errors(table.name):
                        counts[table.name] = _copy_table(source, origin, target, table)
                return counts
        finally:
            engine.dispose()
    finally:
        for extra in ("", "-wal", "-shm", "-journal", "-writer"):
            snapshot.with_name(snapshot.name + extra).unlink(missing_ok=True)


def _copy_table(source: Connection, origin: Table, target: Connection, table: Table) -> int:
    names = [c.name for c in table.columns]
    kinds = {c.name: c.type for c in table.columns}
    order = list(origin.primary_key.columns) or list(origin.columns)
    rows = source.execution_options(yield_per=1000).execute(select(origin).order_by(*order))
    count = 0
    batch: list[dict[str, Any]] = []
    for row in rows.mappings():
        batch.append({name: _fit(row[name], kinds[name]) for name in names})
        if len(batch) >= _INSERT_BATCH:
            target.execute(table.insert(), batch)
            count += len(batch)
            batch = []
    if batch:
        target.execute(table.insert(), batch)
        count += len(batch)
    return count


def _fit(value: Any, kind: Any) -> Any:
    """A value as the target column stores it exactly: instants in UTC (SQLite keeps the UTC
    wall time and drops the offset; PostgreSQL would read a naive one in its session's time
    zone), binary as bytes."""
    if value is None:
        return None
    if isinstance(kind, DateTime) and isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC)
    if isinstance(kind, LargeBinary):
        return bytes(value)
    return value


def _load_table(
    conn: Connection, name: str, codecs: dict[str, str], chunks: Iterator[bytes]
) -> int:
    table = Table(name, MetaData(), autoload_with=conn)
    columns = list(codecs)
    if set(columns) != {c.name for c in table.columns}:
        raise BackupError(f"table {name} of the archive does not fit the schema it names")
    kinds = {c.name: c.type for c in table.columns}
    count = 0
    batch: list[dict[str, Any]] = []
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            values = json.loads(line)
            batch.append(
                {
                    c: _fit(_decode(v, codecs[c]), kinds[c])
                    for c, v in zip(columns, values, strict=True)
                }
            )
            if len(batch) >= _INSERT_BATCH:
                conn.execute(table.insert(), batch)
                count += len(batch)
                batch = []
    if pending.strip():
        raise BackupError(f"table {name} of the archive is cut short")
    if batch:
        conn.execute(table.insert(), batch)
        count += len(batch)
    return count


def _reset_sequences(conn: Connection) -> None:
    """Serial and identity columns continue after the restored rows, not from 1."""
    rows = conn.execute(
        text(
            "SELECT table_name, column_name, column_default FROM information_schema.columns "
            "WHERE table_schema = current_schema() "
            "AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')"
        )
    ).all()
    for table_name, column_name, default in rows:
        named = re.match(r"nextval\('([^']+)'", default or "")
        sequence = (
            named.group(1)
            if named
            else conn.scalar(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table_name, "c": column_name}
            )
        )
        if sequence is None:
            continue
        top = conn.scalar(text(f'SELECT max("{column_name}") FROM "{table_name}"'))
        conn.execute(
            text("SELECT setval(CAST(:s AS regclass), :v, false)"),
            {"s": sequence, "v": int(top or 0) + 1},
        )


def _migrate_to_head(settings: Settings, policy_file: Path) -> None:
    from server.migrate import upgrade
    from server.policy.schema import load_policy

    upgrade(
        settings.effective_database_url,
        key_dir=settings.server_key_dir,
        keys_per_check=load_policy(policy_file).keys_per_check,
    )
