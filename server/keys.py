"""The server's secret keys, kept in files beside the database and never inside it.

A stolen database dump then holds only pseudonyms that cannot be recomputed or tested without the
OPRF key. Files are created 0600 and refused when others can read them, so a misconfigured copy
fails loudly instead of leaking.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

OPRF_KEY_FILE = "oprf.key"
TOKEN_KEY_FILE = "token-signing.key"
AUDIT_KEY_FILE = "audit-checkpoint.key"


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
    token_key: Ed25519PrivateKey
    audit_key: Ed25519PrivateKey

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


def _read_secret(path: Path, size: int) -> bytes:
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
    if len(raw) != size:
        raise KeyFileError(f"key file {path} has {len(raw)} bytes, expected {size}")
    return raw


def create_keys(key_dir: Path) -> None:
    """Create any key file that does not exist yet; existing keys are kept as they are."""
    from protocol.oprf import MODE_VOPRF, generate_key_pair

    if not (key_dir / OPRF_KEY_FILE).exists():
        secret, _public = generate_key_pair(MODE_VOPRF)
        _write_secret(key_dir / OPRF_KEY_FILE, secret)
    for name in (TOKEN_KEY_FILE, AUDIT_KEY_FILE):
        if not (key_dir / name).exists():
            _write_secret(key_dir / name, os.urandom(32))


def load_keys(key_dir: Path) -> ServerKeys:
    from protocol.hazmat.ristretto255 import scalar_mult_base

    oprf_secret = _read_secret(key_dir / OPRF_KEY_FILE, 32)
    return ServerKeys(
        oprf_secret=oprf_secret,
        oprf_public=scalar_mult_base(oprf_secret),
        token_key=Ed25519PrivateKey.from_private_bytes(_read_secret(key_dir / TOKEN_KEY_FILE, 32)),
        audit_key=Ed25519PrivateKey.from_private_bytes(_read_secret(key_dir / AUDIT_KEY_FILE, 32)),
    )
