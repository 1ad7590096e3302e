"""The server's secret keys, kept in files beside the database and never inside it.

A stolen database dump then holds only entries that cannot be recomputed, tested or opened
without the OPRF key file: it holds `skS` and the scalar `w` by which every stored pseudonym is
multiplied (`P̂ = w·P`, docs/protocol.md), so even the handles' keys are out of reach. Files are
created 0600 and refused when others can read them, so a misconfigured copy fails loudly instead
of leaking.

| file | holds |
| --- | --- |
| `oprf-<key_id>.key` | one OPRF key: `skS` then `w` (64 bytes, hex); see below |
| `oprf.key` | version 1's key (`skS` only): `migrate` makes it `oprf-<key_id>.key` |
| `registration.key` | the X25519 key registrations are sealed to |
| `audit-checkpoint.key` | the network signing key (Ed25519): announcements, filters, checkpoints |
| `token-signing.key` | the access-token key (Ed25519) |
| `token-signing.previous.key` | the access-token key before the last rotation: verifies only |
| `network-signing-history` | a line per signing key rotation: the old key's `signing-key` object |
| `network-id` | the network's short id, written into every credentials file |

A rotation adds an OPRF key file, and the old one is deleted after the entry window; which key
is current is the database's current-key row (`server.oprf.models.CurrentOprfKey`), never the
newest file: a crash after writing a file and before the switch leaves an unused file.

The token-signing key and the network signing key rotate by replacing their file
(`rotate_token_key`, `rotate_signing_key`; `refcheck-server keys rotate-token|rotate-signing`).
Every worker follows without a restart: `TokenKeyRing` and `SigningKeyRing` look at their file
again at most once a second (`RECHECK_SECONDS`) and re-read it when it changed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

if TYPE_CHECKING:
    from protocol.signed import SignedObject

OPRF_KEY_FILE = "oprf.key"  # version 1: converted by `create_keys`
OPRF_KEY_GLOB = "oprf-*.key"
REGISTRATION_KEY_FILE = "registration.key"
TOKEN_KEY_FILE = "token-signing.key"
TOKEN_PREVIOUS_KEY_FILE = "token-signing.previous.key"
SIGNING_HISTORY_FILE = "network-signing-history"
#: How often a worker looks whether a rotated key file replaced the one it holds.
RECHECK_SECONDS = 1.0
AUDIT_KEY_FILE = "audit-checkpoint.key"
NETWORK_ID_FILE = "network-id"
DEFAULT_NETWORK_ID = "refcheck"
_NETWORK_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


class KeyFileError(Exception):
    """A key file is missing, malformed or readable by others."""


def key_id_for(public_key: bytes) -> str:
    """Short, stable name for a public key, published so clients can pin it."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class OprfKey:
    """One OPRF key: `skS` and the wrapping scalar `w` of the pseudonyms stored under it."""

    secret: bytes = field(repr=False)
    # The scalar that stored pseudonyms are multiplied by; its inverse opens them in memory.
    wrap: bytes = field(repr=False)

    @functools.cached_property
    def public(self) -> bytes:
        from protocol.keyops import public_key

        return public_key(self.secret)

    @functools.cached_property
    def key_id(self) -> str:
        return key_id_for(self.public)

    @functools.cached_property
    def unwrap(self) -> bytes:
        """`w⁻¹`, to turn a stored `P̂` back into `P` in memory."""
        from protocol.keyops import invert

        return invert(self.wrap)


class OprfRing:
    """The OPRF key files of one data directory, and which of them is current.

    Which key is current is the database's decision (the current-key row that a rotation's
    commit sets), so every worker follows a rotation without a restart: each use of the key
    first reads that row (`server.oprf.services.current_key`), and a key file not yet loaded is
    read then. Thread-safe: one ring serves every thread of a worker.
    """

    def __init__(self, key_dir: Path, keys: dict[str, OprfKey]) -> None:
        self._dir = key_dir
        self._keys = dict(keys)
        self._lock = threading.Lock()
        self._current: tuple[int, OprfKey] | None = None
        if len(keys) == 1:
            # Before the first read of the current-key row (a fresh network has one key).
            self._current = (1, next(iter(keys.values())))

    def key(self, key_id: str) -> OprfKey:
        with self._lock:
            known = self._keys.get(key_id)
        if known is not None:
            return known
        loaded = read_oprf_key(self._dir / oprf_key_file(key_id))
        if loaded.key_id != key_id:
            raise KeyFileError(f"key file {oprf_key_file(key_id)} holds another key")
        with self._lock:
            self._keys[key_id] = loaded
        return loaded

    def set_current(self, key_seq: int, key_id: str) -> OprfKey:
        key = self.key(key_id)
        with self._lock:
            self._current = (key_seq, key)
        return key

    @property
    def current(self) -> tuple[int, OprfKey]:
        with self._lock:
            if self._current is None:
                raise KeyFileError("no current OPRF key known yet (the database has none)")
            return self._current

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._keys.pop(key_id, None)


class _WatchedFile:
    """A key file read again when it was replaced (new inode or mtime), looked at no more often
    than every `RECHECK_SECONDS`: a rotation by the CLI reaches every worker within a second,
    and a request costs at most one `stat` a second."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")

    def _now_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def changed(self, *, force: bool = False) -> bool:
        """True once after the file was replaced (and on the first call)."""
        with self._lock:
            now = self._clock()
            if not force and now - self._checked < RECHECK_SECONDS and self._stamp is not None:
                return False
            self._checked = now
            stamp = self._now_stamp()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            return True


@dataclass(frozen=True)
class _TokenState:
    key: Ed25519PrivateKey
    public: bytes
    key_id: str
    #: Every key whose tokens verify: the current one and, after a rotation, the previous one.
    verifying: dict[str, bytes]


class TokenKeyRing:
    """The access-token keys of one data directory: the current key signs, and it and the
    previous key (`token-signing.previous.key`, kept by a rotation unless it leaked) verify, so
    tokens issued just before a rotation stay valid until they expire."""

    def __init__(self, key_dir: Path) -> None:
        self._dir = key_dir
        self._watch = _WatchedFile(key_dir / TOKEN_KEY_FILE)
        self._lock = threading.Lock()
        # Stamped before reading: a file replaced in between is read again at the next look.
        self._watch.changed(force=True)
        self._state = self._read()

    def _read(self) -> _TokenState:
        key = Ed25519PrivateKey.from_private_bytes(_read_secret(self._dir / TOKEN_KEY_FILE, 32))
        public = _raw_public(key.public_key())
        verifying = {key_id_for(public): public}
        previous_path = self._dir / TOKEN_PREVIOUS_KEY_FILE
        if previous_path.exists():
            previous = Ed25519PrivateKey.from_private_bytes(_read_secret(previous_path, 32))
            old_public = _raw_public(previous.public_key())
            verifying.setdefault(key_id_for(old_public), old_public)
        return _TokenState(key, public, key_id_for(public), verifying)

    def _refresh(self, *, force: bool = False) -> _TokenState:
        if self._watch.changed(force=force):
            fresh = self._read()
            with self._lock:
                self._state = fresh
        with self._lock:
            return self._state

    @property
    def current(self) -> _TokenState:
        return self._refresh()

    def verifying_key(self, key_id: str) -> bytes | None:
        """The public key of `key_id` if its tokens verify now; an unknown id makes the ring
        look at the files at once (a token from a worker that saw the rotation first)."""
        found = self._refresh().verifying.get(key_id)
        if found is None:
            found = self._refresh(force=True).verifying.get(key_id)
        return found

    def verifying_keys(self) -> dict[str, bytes]:
        return dict(self._refresh().verifying)


@dataclass(frozen=True)
class _SigningState:
    key: Ed25519PrivateKey
    public: bytes
    key_id: str
    #: The `signing-key` objects of every rotation, oldest first (each signed by the key it
    #: replaced and cosigned by the new one), as framed bytes.
    history: tuple[bytes, ...]
    #: Every network signing key the network has had, oldest first, the current one last.
    publics: tuple[bytes, ...]


class SigningKeyRing:
    """The network signing key (`audit-checkpoint.key`) and its history: what signs now, and
    every key that signed before, for verifying what they signed (`audit verify`)."""

    def __init__(self, key_dir: Path) -> None:
        self._dir = key_dir
        self._watch = _WatchedFile(key_dir / AUDIT_KEY_FILE)
        self._lock = threading.Lock()
        # Stamped before reading: a file replaced in between is read again at the next look.
        self._watch.changed(force=True)
        self._state = self._read()

    def _read(self) -> _SigningState:
        key = Ed25519PrivateKey.from_private_bytes(_read_secret(self._dir / AUDIT_KEY_FILE, 32))
        public = _raw_public(key.public_key())
        history = read_signing_history(self._dir)
        publics = [bytes.fromhex(str(_parse_signed(h).fields["prev_public_key"])) for h in history]
        if (
            history
            and bytes.fromhex(str(_parse_signed(history[-1]).fields["public_key"])) != public
        ):
            raise KeyFileError(
                f"{self._dir / AUDIT_KEY_FILE} is not the key the signing history ends with"
            )
        return _SigningState(key, public, key_id_for(public), tuple(history), (*publics, public))

    def reload(self) -> _SigningState:
        """Read the files now (the process that rotated the key)."""
        self._watch.changed(force=True)
        fresh = self._read()
        with self._lock:
            self._state = fresh
        return fresh

    @property
    def current(self) -> _SigningState:
        if self._watch.changed():
            fresh = self._read()
            with self._lock:
                self._state = fresh
        with self._lock:
            return self._state


@dataclass(frozen=True)
class ServerKeys:
    oprf_ring: OprfRing
    registration_private: bytes = field(repr=False)
    token_ring: TokenKeyRing
    signing_ring: SigningKeyRing
    network_id: str = DEFAULT_NETWORK_ID

    @property
    def token_key(self) -> Ed25519PrivateKey:
        """The access-token key that signs now."""
        return self.token_ring.current.key

    @property
    def audit_key(self) -> Ed25519PrivateKey:
        """The network signing key in force."""
        return self.signing_ring.current.key

    # The current OPRF key, as last read from the database's current-key row.
    @property
    def oprf_key(self) -> OprfKey:
        return self.oprf_ring.current[1]

    @property
    def oprf_key_seq(self) -> int:
        return self.oprf_ring.current[0]

    @property
    def oprf_secret(self) -> bytes:
        return self.oprf_key.secret

    @property
    def oprf_public(self) -> bytes:
        return self.oprf_key.public

    @property
    def oprf_wrap(self) -> bytes:
        return self.oprf_key.wrap

    @property
    def oprf_unwrap(self) -> bytes:
        return self.oprf_key.unwrap

    @property
    def oprf_key_id(self) -> str:
        return self.oprf_key.key_id

    @functools.cached_property
    def registration_public(self) -> bytes:
        from nacl.public import PrivateKey

        return bytes(PrivateKey(self.registration_private).public_key)

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The network signing key is the audit-checkpoint key: one long-term key whose
        fingerprint members pin from their credentials files."""
        return self.audit_key

    @property
    def signing_key_sha256(self) -> str:
        """The fingerprint written into credentials files (hex SHA-256 of the raw key)."""
        return hashlib.sha256(self.audit_public).hexdigest()

    # Derived once per key read (in the rings): every request verifies a token against the
    # public key and compares key ids, and deriving an Ed25519 public key costs a base-point
    # multiplication.
    @property
    def token_public(self) -> bytes:
        return self.token_ring.current.public

    @property
    def token_key_id(self) -> str:
        return self.token_ring.current.key_id

    def token_verifying_key(self, key_id: str) -> bytes | None:
        """The public key that verifies tokens naming `key_id`, if any does now."""
        return self.token_ring.verifying_key(key_id)

    @property
    def audit_public(self) -> bytes:
        return self.signing_ring.current.public

    @property
    def audit_key_id(self) -> str:
        return self.signing_ring.current.key_id

    @property
    def signing_history(self) -> tuple[bytes, ...]:
        """The framed `signing-key` objects of every rotation, oldest first."""
        return self.signing_ring.current.history

    @property
    def signing_publics(self) -> tuple[bytes, ...]:
        """Every network signing key the network has had, the current one last."""
        return self.signing_ring.current.publics


def _write_secret(path: Path, secret: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: never overwrite an existing key, which would orphan every stored pseudonym.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _replace_secret(path: Path, secret: bytes) -> None:
    """Write `secret` to `path` through a temporary file, fsynced and renamed, then fsync the
    directory: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _write_secret(tmp, secret)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_secret(path: Path, size: int | tuple[int, ...]) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path} is missing (run `refcheck-server init`)") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is accessible by group or others; chmod 600 it")
    try:
        raw = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise KeyFileError(f"key file {path} is not hex") from exc
    sizes = size if isinstance(size, tuple) else (size,)
    if len(raw) not in sizes:
        raise KeyFileError(f"key file {path} has {len(raw)} bytes, expected {sizes[-1]}")
    return raw


def create_keys(key_dir: Path, *, network_id: str | None = None) -> None:
    """Create any key file that does not exist yet; existing keys are kept as they are.

    A version-1 `oprf.key` (only `skS`) gains a fresh `w` here, written crash-safely; the
    database migration to version 2 then wraps every stored pseudonym with it.
    """
    from nacl.public import PrivateKey

    from protocol.keyops import new_scalar
    from protocol.oprf import MODE_VOPRF, generate_key_pair

    legacy = key_dir / OPRF_KEY_FILE
    if legacy.exists():
        # Version 1 (skS only) or an early version 2 (skS and w): becomes oprf-<key_id>.key,
        # written crash-safely before the old file goes, so a crash leaves one of the two.
        current = _read_secret(legacy, (32, 64))
        pair = current if len(current) == 64 else current + new_scalar()
        write_oprf_key(key_dir, OprfKey(pair[:32], pair[32:]))
        legacy.unlink()
    elif not list(key_dir.glob(OPRF_KEY_GLOB)):
        secret, _public = generate_key_pair(MODE_VOPRF)
        write_oprf_key(key_dir, OprfKey(secret, new_scalar()))
    if not (key_dir / REGISTRATION_KEY_FILE).exists():
        _write_secret(key_dir / REGISTRATION_KEY_FILE, bytes(PrivateKey.generate()))
    for name in (TOKEN_KEY_FILE, AUDIT_KEY_FILE):
        if not (key_dir / name).exists():
            _write_secret(key_dir / name, os.urandom(32))
    id_path = key_dir / NETWORK_ID_FILE
    if not id_path.exists():
        chosen = network_id or DEFAULT_NETWORK_ID
        if _NETWORK_ID.fullmatch(chosen) is None:
            raise KeyFileError("a network id is 1 to 40 lower-case letters, digits and hyphens")
        id_path.write_text(chosen + "\n", encoding="ascii")


def read_network_id(key_dir: Path) -> str:
    try:
        value = (key_dir / NETWORK_ID_FILE).read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"{key_dir / NETWORK_ID_FILE} is missing (run `refcheck-server migrate`)"
        ) from exc
    if _NETWORK_ID.fullmatch(value) is None:
        raise KeyFileError(f"{key_dir / NETWORK_ID_FILE} does not hold a valid network id")
    return value


def oprf_key_file(key_id: str) -> str:
    return f"oprf-{key_id}.key"


def write_oprf_key(key_dir: Path, key: OprfKey) -> Path:
    """Write a key file as the contract's rotation says: to `.tmp`, fsynced, renamed, the
    directory fsynced, then re-read and compared, so what is on disk is what will be used."""
    path = key_dir / oprf_key_file(key.key_id)
    if not path.exists():
        _replace_secret(path, key.secret + key.wrap)
    if read_oprf_key(path).public != key.public:
        raise KeyFileError(f"key file {path} does not read back as written")
    return path


def read_oprf_key(path: Path) -> OprfKey:
    raw = _read_secret(path, 64)
    return OprfKey(raw[:32], raw[32:])


def read_oprf_keys(key_dir: Path) -> dict[str, OprfKey]:
    """Every OPRF key file, by key id; a version-1 `oprf.key` is refused (run `migrate`)."""
    if (key_dir / OPRF_KEY_FILE).exists():
        raise KeyFileError(
            f"key file {key_dir / OPRF_KEY_FILE} is from protocol version 1: run "
            "`refcheck-server migrate --data-dir ...` once to upgrade it with the database"
        )
    keys: dict[str, OprfKey] = {}
    for path in sorted(key_dir.glob(OPRF_KEY_GLOB)):
        key = read_oprf_key(path)
        if path.name != oprf_key_file(key.key_id):
            raise KeyFileError(f"key file {path} holds another key than its name says")
        keys[key.key_id] = key
    if not keys:
        raise KeyFileError(f"no OPRF key file in {key_dir} (run `refcheck-server init`)")
    return keys


def load_keys(key_dir: Path) -> ServerKeys:
    return ServerKeys(
        oprf_ring=OprfRing(key_dir, read_oprf_keys(key_dir)),
        registration_private=_read_secret(key_dir / REGISTRATION_KEY_FILE, 32),
        token_ring=TokenKeyRing(key_dir),
        signing_ring=SigningKeyRing(key_dir),
        network_id=read_network_id(key_dir),
    )


# --- rotating the token-signing key and the network signing key -----------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class KeyRotation:
    old_key_id: str
    new_key_id: str


def rotate_token_key(key_dir: Path, *, keep_previous: bool = True) -> KeyRotation:
    """Replace the access-token key. With `keep_previous` the old key goes on verifying (tokens
    already issued stay valid until they expire, at most `access_token_ttl_seconds`); without
    it (the key leaked) every token it signed is refused at once, and clients sign in again.

    Crash-safe: the new key is written to a temporary file and renamed over the old one after
    the old one was copied to `token-signing.previous.key`; a crash leaves the old key or the
    new one in force, never none.
    """
    current = key_dir / TOKEN_KEY_FILE
    old = _read_secret(current, 32)
    new = os.urandom(32)
    tmp = current.with_name(current.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _write_secret(tmp, new)
    previous = key_dir / TOKEN_PREVIOUS_KEY_FILE
    if keep_previous:
        _replace_secret(previous, old)
    else:
        previous.unlink(missing_ok=True)
    os.replace(tmp, current)
    _fsync_dir(key_dir)
    old_public = _raw_public(Ed25519PrivateKey.from_private_bytes(old).public_key())
    new_public = _raw_public(Ed25519PrivateKey.from_private_bytes(new).public_key())
    return KeyRotation(key_id_for(old_public), key_id_for(new_public))


def _parse_signed(framed: bytes) -> SignedObject:
    from protocol.signed import parse

    return parse(framed)


def read_signing_history(key_dir: Path) -> list[bytes]:
    """The framed `signing-key` objects, oldest first, each checked: signed by the key before
    it and cosigned by the key it names, in an unbroken chain of `key_seq` 2, 3, ..."""
    from protocol.errors import ProtocolError
    from protocol.signed import verify_signing_key

    path = key_dir / SIGNING_HISTORY_FILE
    if not path.exists():
        return []
    network_id = read_network_id(key_dir)
    history: list[bytes] = []
    previous: bytes | None = None
    for number, line in enumerate(path.read_text(encoding="ascii").split(), start=2):
        try:
            framed = bytes.fromhex(line)
            obj = _parse_signed(framed)
            # The first line's old key is the network's first key, trusted as the file says;
            # every later line must replace the key the line before it named.
            prev_public = previous or bytes.fromhex(str(obj.fields["prev_public_key"]))
            step = verify_signing_key(obj, prev_public_key=prev_public, network_id=network_id)
            if step.key_seq != number:
                raise ValueError("the history is not one chain")
        except (ProtocolError, ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"{path} line {number - 1} is not a valid key rotation") from exc
        history.append(framed)
        previous = step.public_key
    return history


def rotate_signing_key(key_dir: Path, *, issued_at: str) -> tuple[KeyRotation, bytes]:
    """Replace the network signing key, appending the rotation to the signing history first.

    Order, for a crash at any point: the new key to a temporary file; the history line (signed
    by the old key, cosigned by the new); the new key renamed over the old. Until the rename the
    old key is in force and a history line naming a key that never took over is dropped by the
    next rotation's recovery (`_drop_unused_history`). Returns the rotation and the framed
    object (to be logged and announced).
    """
    current = key_dir / AUDIT_KEY_FILE
    old = Ed25519PrivateKey.from_private_bytes(_read_secret(current, 32))
    _drop_unused_history(key_dir, _raw_public(old.public_key()))
    history = read_signing_history(key_dir)
    new_secret = os.urandom(32)
    new = Ed25519PrivateKey.from_private_bytes(new_secret)
    tmp = current.with_name(current.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _write_secret(tmp, new_secret)
    from protocol.signed import sign_signing_key

    # Signed by the old key, cosigned by the new: a client pinned to the old key follows it.
    obj = sign_signing_key(
        old,
        new,
        network_id=read_network_id(key_dir),
        key_seq=len(history) + 2,
        issued_at=issued_at,
    )
    lines = [h.hex() for h in history] + [obj.framed().hex()]
    path = key_dir / SIGNING_HISTORY_FILE
    history_tmp = path.with_name(path.name + ".tmp")
    history_tmp.unlink(missing_ok=True)
    fd = os.open(history_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(history_tmp, path)
    os.replace(tmp, current)
    _fsync_dir(key_dir)
    rotation = KeyRotation(
        key_id_for(_raw_public(old.public_key())), key_id_for(_raw_public(new.public_key()))
    )
    return rotation, obj.framed()


def read_signing_secret(key_dir: Path) -> bytes:
    """The network signing key's 32 secret bytes, to put back with `restore_signing_key`."""
    return _read_secret(key_dir / AUDIT_KEY_FILE, 32)


def restore_signing_key(key_dir: Path, secret: bytes) -> None:
    """Put `secret` back as the network signing key after a rotation whose database work failed
    (`server.signing_rotation`), and drop the history line naming the key that never took over.
    The key first: a crash between the two leaves a line the next rotation's recovery drops
    (`_drop_unused_history`), never a key in force that the history does not lead to."""
    _replace_secret(key_dir / AUDIT_KEY_FILE, secret)
    restored = Ed25519PrivateKey.from_private_bytes(secret)
    _drop_unused_history(key_dir, _raw_public(restored.public_key()))


def _drop_unused_history(key_dir: Path, in_force: bytes) -> None:
    """After a crash between writing the history and renaming the key: the last line names a
    key that never took over. Keep the history only up to the key in force."""
    path = key_dir / SIGNING_HISTORY_FILE
    if not path.exists():
        return
    lines = path.read_text(encoding="ascii").split()
    while lines:
        last = _parse_signed(bytes.fromhex(lines[-1]))
        if bytes.fromhex(str(last.fields["public_key"])) == in_force:
            break
        lines.pop()
    _replace_secret_text(path, "".join(line + "\n" for line in lines))


def _replace_secret_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
