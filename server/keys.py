"""The server's secret keys, kept in files beside the database and never inside it.

A stolen database dump then holds only entries that cannot be recomputed, tested or opened
without the OPRF key file: it holds `skS` and the scalar `w` by which every stored pseudonym is
multiplied (`P̂ = w·P`, docs/protocol.md), so even the handles' keys are out of reach. Files are
created 0600 and refused when others can read them, so a misconfigured copy fails loudly instead
of leaking.

| file | holds |
| --- | --- |
| `oprf.key` | `skS` then `w` (64 bytes, hex); a version-1 file (32 bytes) gains `w` at `migrate` |
| `registration.key` | the X25519 key registrations are sealed to |
| `audit-checkpoint.key` | the network signing key (Ed25519): announcements, filters, checkpoints |
| `token-signing.key` | the access-token key (Ed25519) |
| `network-id` | the network's short id, written into every credentials file |
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

OPRF_KEY_FILE = "oprf.key"
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
class ServerKeys:
    oprf_secret: bytes
    oprf_public: bytes
    # The scalar that stored pseudonyms are multiplied by; its inverse opens them in memory.
    oprf_wrap: bytes
    registration_private: bytes
    token_key: Ed25519PrivateKey
    audit_key: Ed25519PrivateKey
    network_id: str = DEFAULT_NETWORK_ID
    # Rotation (the next step of protocol v2) raises it; until then the one key is the first.
    oprf_key_seq: int = 1

    @functools.cached_property
    def oprf_unwrap(self) -> bytes:
        """`w⁻¹`, to turn a stored `P̂` back into `P` in memory."""
        from protocol.hazmat.ristretto255 import scalar_invert

        return scalar_invert(self.oprf_wrap)

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
    def oprf_key_id(self) -> str:
        return key_id_for(self.oprf_public)

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

    oprf_path = key_dir / OPRF_KEY_FILE
    if not oprf_path.exists():
        secret, _public = generate_key_pair(MODE_VOPRF)
        _write_secret(oprf_path, secret + random_scalar())
    else:
        current = _read_secret(oprf_path, (32, 64))
        if len(current) == 32:
            _replace_secret(oprf_path, current + random_scalar())
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


def read_oprf_pair(key_dir: Path) -> tuple[bytes, bytes]:
    """`(skS, w)` from the OPRF key file; a version-1 file is refused (run `migrate`)."""
    raw = _read_secret(key_dir / OPRF_KEY_FILE, (32, 64))
    if len(raw) == 32:
        raise KeyFileError(
            f"key file {key_dir / OPRF_KEY_FILE} is from protocol version 1: run "
            "`refcheck-server migrate --data-dir ...` once to upgrade it with the database"
        )
    return raw[:32], raw[32:]


def load_keys(key_dir: Path) -> ServerKeys:
    from protocol.hazmat.ristretto255 import scalar_mult_base

    oprf_secret, wrap = read_oprf_pair(key_dir)
    return ServerKeys(
        oprf_secret=oprf_secret,
        oprf_public=scalar_mult_base(oprf_secret),
        oprf_wrap=wrap,
        registration_private=_read_secret(key_dir / REGISTRATION_KEY_FILE, 32),
        token_key=Ed25519PrivateKey.from_private_bytes(_read_secret(key_dir / TOKEN_KEY_FILE, 32)),
        audit_key=Ed25519PrivateKey.from_private_bytes(_read_secret(key_dir / AUDIT_KEY_FILE, 32)),
        network_id=read_network_id(key_dir),
    )
