"""Credentials files (docs/api.md, "Credentials file"): what a principal needs to sign in.

Written once, by `refcheck-server init` (the first admin, the demo principals); the server keeps
only the public halves. Files are created 0600 in a 0700 directory because they hold private keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from nacl.public import PrivateKey as X25519PrivateKey

from server.keys import ServerKeys
from server.registry.models import Organisation, Principal

FORMAT_VERSION = 1


def ed25519_seed(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def ed25519_public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def org_keys_dict(ed25519: Ed25519PrivateKey, x25519: X25519PrivateKey) -> dict[str, str]:
    return {"ed25519_private": ed25519_seed(ed25519).hex(), "x25519_private": bytes(x25519).hex()}


def credentials(
    *,
    base_url: str,
    issuer: str,
    principal: Principal,
    org: Organisation,
    auth_key: Ed25519PrivateKey,
    org_keys: dict[str, str] | None,
    network: ServerKeys,
) -> dict[str, Any]:
    """A principal's credentials file. It carries the network's id and the fingerprint of its
    signing key, which the SDK pins before its first request: a server showing another key is
    refused, never trusted on first use."""
    return {
        "refcheck_credentials": FORMAT_VERSION,
        "base_url": base_url,
        "issuer": issuer,
        "network_id": network.network_id,
        "network_signing_key_sha256": network.signing_key_sha256,
        "client_id": principal.id,
        "principal_name": principal.name,
        "roles": list(principal.roles),
        "org_id": org.id,
        "org_short_name": org.short_name,
        "auth_private_key": ed25519_seed(auth_key).hex(),
        "org_keys": org_keys,
    }


def write_credentials(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON readable by its owner only (never overwrites an existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
