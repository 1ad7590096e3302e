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
| `network-id` | the network's short id, written into every credentials file |

A rotation adds an OPRF key file, and the old one is deleted after the entry window; which key
is current is the database's current-key row (`server.oprf.models.CurrentOprfKey`), never the
newest file: a crash after writing a file and before the switch leaves an unused file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

OPRF_KEY_FILE = "oprf.key"  # version 1: converted by `create_keys`
OPRF_KEY_GLOB = "oprf-*.key"
REGISTRATION_KEY_FILE = "registration.key"
TOKEN_KEY_FILE = "token-signing.key"
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
        from protocol.hazmat.ristretto255 import scalar_mult_base

        return scalar_mult_base(self.secret)

    @functools.cached_property
    def key_id(self) -> str:
        return key_id_for(self.public)

    @functools.cached_property
    def unwrap(self) -> bytes:
        """`w⁻¹`, to turn a stored `P̂` back into `P` in memory."""
        from protocol.hazmat.ristretto255 import scalar_invert

        return scalar_invert(self.wrap)


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


@dataclass(frozen=True)
class ServerKeys:
    oprf_ring: OprfRing
    registration_private: bytes = field(repr=False)
    token_key: Ed25519PrivateKey
    audit_key: Ed25519PrivateKey
    network_id: str = DEFAULT_NETWORK_ID

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

    @functools.cached_property
    def signing_key_sha256(self) -> str:
        """The fingerprint written into credentials files (hex SHA-256 of the raw key)."""
        return hashlib.sha256(self.audit_public).hexdigest()

    # Cached: every request verifies a token against the public key and compares key ids, and
    # deriving an Ed25519 public key costs a base-point multiplication.
    @functools.cached_property
    def token_public(self) -> bytes:
        return _raw_public(self.token_key.public_key())

    @functools.cached_property
    def token_key_id(self) -> str:
        return key_id_for(self.token_public)

    @functools.cached_property
    def audit_public(self) -> bytes:
        return _raw_public(self.audit_key.public_key())

    @functools.cached_property
    def audit_key_id(self) -> str:
        return key_id_for(self.audit_public)


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

    from protocol.hazmat.ristretto255 import random_scalar
    from protocol.oprf import MODE_VOPRF, generate_key_pair

    legacy = key_dir / OPRF_KEY_FILE
    if legacy.exists():
        # Version 1 (skS only) or an early version 2 (skS and w): becomes oprf-<key_id>.key,
        # written crash-safely before the old file goes, so a crash leaves one of the two.
        current = _read_secret(legacy, (32, 64))
        pair = current if len(current) == 64 else current + random_scalar()
        write_oprf_key(key_dir, OprfKey(pair[:32], pair[32:]))
        legacy.unlink()
    elif not list(key_dir.glob(OPRF_KEY_GLOB)):
        secret, _public = generate_key_pair(MODE_VOPRF)
        write_oprf_key(key_dir, OprfKey(secret, random_scalar()))
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
        token_key=Ed25519PrivateKey.from_private_bytes(_read_secret(key_dir / TOKEN_KEY_FILE, 32)),
        audit_key=Ed25519PrivateKey.from_private_bytes(_read_secret(key_dir / AUDIT_KEY_FILE, 32)),
        network_id=read_network_id(key_dir),
    )
