"""Credentials: who the SDK authenticates as, and the private keys that prove it.

The file format is docs/api.md's (`"refcheck_credentials": 1`), as `refcheck-server init --demo`
and `refcheck login` write it. One extension, only ever written by `refcheck login` for a
passphrase-protected keystore: instead of `auth_private_key` and `org_keys` in the clear, a
`sealed_secrets` envelope (see `client_sdk.secretfile`) holding both; loading it needs the
passphrase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk.errors import CredentialsError
from client_sdk.secretfile import load_json_secret, open_sealed, seal, write_json_secret

__all__ = ["FORMAT_VERSION", "Credentials", "OrgKeys"]

FORMAT_VERSION = 1


def _hex32(value: Any, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise CredentialsError(f"{name} must be 32 bytes of hex")
    return raw


def _optional_text(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CredentialsError(f"{name} must be a string")
    return value


@dataclass(frozen=True)
class OrgKeys:
    """The organisation's own key pairs: Ed25519 signs what it discloses, X25519 opens what is
    sealed to it. Only members have them; the secretariat's principals do not."""

    ed25519_private: bytes = field(repr=False)
    x25519_private: bytes = field(repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> OrgKeys:
        if not isinstance(data, Mapping):
            raise CredentialsError("org_keys must be an object or null")
        return cls(
            ed25519_private=_hex32(data.get("ed25519_private"), "org_keys.ed25519_private"),
            x25519_private=_hex32(data.get("x25519_private"), "org_keys.x25519_private"),
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "ed25519_private": self.ed25519_private.hex(),
            "x25519_private": self.x25519_private.hex(),
        }


@dataclass(frozen=True)
class Credentials:
    """A principal's identity and keys, as loaded from a credentials file.

    Usage::

        creds = Credentials.load("var/demo/org-b-hr.json")
        client = Client(creds, base_url="https://refcheck.example.org")

    The private keys are excluded from `repr` so that a logged object does not leak them.
    """

    client_id: str
    auth_private_key: bytes = field(repr=False)
    issuer: str = "refcheck"
    base_url: str | None = None
    principal_name: str = ""
    roles: tuple[str, ...] = ()
    org_id: str | None = None
    org_short_name: str | None = None
    org_keys: OrgKeys | None = field(default=None, repr=False)
    #: The network these credentials are for and the SHA-256 of its signing key (hex), as the
    #: secretariat wrote them: the SDK refuses a server that shows another (`client_sdk.pinning`).
    network_id: str | None = None
    network_signing_key_sha256: str | None = None

    def __post_init__(self) -> None:
        if len(self.auth_private_key) != 32:
            raise CredentialsError("auth_private_key must be a 32-byte Ed25519 seed")
        if not self.client_id:
            raise CredentialsError("client_id is required")
        fingerprint = self.network_signing_key_sha256
        if fingerprint is not None and (
            len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint)
        ):
            raise CredentialsError("network_signing_key_sha256 must be 64 lower-case hex digits")

    @property
    def auth_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.auth_private_key)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, passphrase: str | None = None) -> Credentials:
        if data.get("refcheck_credentials") != FORMAT_VERSION:
            raise CredentialsError("not a refcheck credentials file (version 1)")
        secrets: Mapping[str, Any] = data
        if data.get("sealed_secrets") is not None:
            secrets = open_sealed(data["sealed_secrets"], passphrase)
        raw_org_keys = secrets.get("org_keys")
        roles = data.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise CredentialsError("roles must be a list of strings")
        client_id = data.get("client_id")
        if not isinstance(client_id, str):
            raise CredentialsError("client_id must be a string")
        return cls(
            client_id=client_id,
            auth_private_key=_hex32(secrets.get("auth_private_key"), "auth_private_key"),
            issuer=str(data.get("issuer") or "refcheck"),
            base_url=data.get("base_url") or None,
            principal_name=str(data.get("principal_name") or ""),
            roles=tuple(roles),
            org_id=data.get("org_id") or None,
            org_short_name=data.get("org_short_name") or None,
            org_keys=None if raw_org_keys is None else OrgKeys.from_dict(raw_org_keys),
            network_id=_optional_text(data.get("network_id"), "network_id"),
            network_signing_key_sha256=_optional_text(
                data.get("network_signing_key_sha256"), "network_signing_key_sha256"
            ),
        )

    @classmethod
    def load(cls, path: str | Path, *, passphrase: str | None = None) -> Credentials:
        """Read a credentials file; refuses one that group or others can read."""
        return cls.from_dict(load_json_secret(Path(path)), passphrase=passphrase)

    def to_dict(self, *, passphrase: str | None = None) -> dict[str, Any]:
        """The file form; with a passphrase the private keys go into a sealed envelope."""
        secrets: dict[str, Any] = {
            "auth_private_key": self.auth_private_key.hex(),
            "org_keys": None if self.org_keys is None else self.org_keys.to_dict(),
        }
        document: dict[str, Any] = {
            "refcheck_credentials": FORMAT_VERSION,
            "base_url": self.base_url,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "principal_name": self.principal_name,
            "roles": list(self.roles),
            "org_id": self.org_id,
            "org_short_name": self.org_short_name,
        }
        if self.network_id is not None:
            document["network_id"] = self.network_id
        if self.network_signing_key_sha256 is not None:
            document["network_signing_key_sha256"] = self.network_signing_key_sha256
        if passphrase is None:
            document.update(secrets)
        else:
            document.update({"auth_private_key": None, "org_keys": None})
            document["sealed_secrets"] = seal(secrets, passphrase)
        return document

    def save(
        self, path: str | Path, *, passphrase: str | None = None, overwrite: bool = False
    ) -> None:
        """Write the file 0600, atomically; refuses to overwrite unless asked."""
        write_json_secret(Path(path), self.to_dict(passphrase=passphrase), overwrite=overwrite)
