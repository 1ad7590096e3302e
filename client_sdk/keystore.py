"""The organisation's and the principal's keys, generated and kept on the organisation's machine.

`refcheck keys init` calls `generate` and `Keystore.save`; the network admin only ever sees the
public halves (`Keystore.public_keys`), which they register with `refcheck admin org add` and
`refcheck admin principal add`. Private keys never leave this file, so a compromised server can
neither impersonate a member nor read what was sealed to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.public
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from client_sdk.credentials import OrgKeys, _hex32
from client_sdk.errors import CredentialsError
from client_sdk.secretfile import load_json_secret, open_sealed, seal, write_json_secret

__all__ = [
    "KEYSTORE_VERSION",
    "ORG_EXPORT_VERSION",
    "Keystore",
    "ed25519_public",
    "export_org_keys",
    "import_org_keys",
    "org_public_keys",
    "x25519_public",
]

KEYSTORE_VERSION = 1
#: Version of the file `refcheck keys export-org` writes (the organisation's keys only, always
#: sealed under a passphrase).
ORG_EXPORT_VERSION = 1


def ed25519_public(seed: bytes) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_public(private: bytes) -> bytes:
    return bytes(nacl.public.PrivateKey(private).public_key)


@dataclass(frozen=True)
class Keystore:
    """A principal's auth key and, for members, the organisation's key pairs.

    Usage::

        ks = Keystore.generate()                  # org keys + auth key
        ks.save("keys.json", passphrase="...")    # or passphrase=None: plaintext, 0600
        print(ks.public_keys())                   # give these to the network admin
        ks = Keystore.load("keys.json", passphrase="...")

    `auth_only=True` makes just an auth key: for the secretariat's principals, or a second
    principal of an organisation whose org keys already exist elsewhere.
    """

    auth_private_key: bytes = field(repr=False)
    org_keys: OrgKeys | None = field(default=None, repr=False)

    @classmethod
    def generate(cls, *, auth_only: bool = False) -> Keystore:
        auth = Ed25519PrivateKey.generate().private_bytes_raw()
        if auth_only:
            return cls(auth_private_key=auth)
        return cls(
            auth_private_key=auth,
            org_keys=OrgKeys(
                ed25519_private=Ed25519PrivateKey.generate().private_bytes_raw(),
                x25519_private=bytes(nacl.public.PrivateKey.generate()),
            ),
        )

    def public_keys(self) -> dict[str, str]:
        """Hex public keys, named as the registry API names them."""
        out = {"auth_public_key": ed25519_public(self.auth_private_key).hex()}
        if self.org_keys is not None:
            out["ed25519_public_key"] = ed25519_public(self.org_keys.ed25519_private).hex()
            out["x25519_public_key"] = x25519_public(self.org_keys.x25519_private).hex()
        return out

    def with_org_keys(self, org_keys: OrgKeys) -> Keystore:
        """This keystore's auth key with `org_keys` (`refcheck keys import-org`)."""
        return Keystore(auth_private_key=self.auth_private_key, org_keys=org_keys)

    def _secrets(self) -> dict[str, Any]:
        return {
            "auth_private_key": self.auth_private_key.hex(),
            "org_keys": None if self.org_keys is None else self.org_keys.to_dict(),
        }

    def save(self, path: str | Path, *, passphrase: str | None, overwrite: bool = False) -> None:
        """Write the keystore 0600; with a passphrase the private keys are sealed (Argon2id +
        XSalsa20-Poly1305), without one they are in the clear for service accounts."""
        document: dict[str, Any] = {
            "refcheck_keystore": KEYSTORE_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "public": self.public_keys(),
        }
        if passphrase is None:
            document["protection"] = "none"
            document["secrets"] = self._secrets()
        else:
            document["protection"] = "passphrase"
            document["sealed_secrets"] = seal(self._secrets(), passphrase)
        write_json_secret(Path(path), document, overwrite=overwrite)

    @staticmethod
    def is_sealed(path: str | Path) -> bool:
        return load_json_secret(Path(path)).get("protection") == "passphrase"

    @classmethod
    def load(cls, path: str | Path, *, passphrase: str | None = None) -> Keystore:
        document = load_json_secret(Path(path))
        if document.get("refcheck_keystore") != KEYSTORE_VERSION:
            raise CredentialsError(f"{path} is not a refcheck keystore (version 1)")
        secrets: Mapping[str, Any]
        if document.get("protection") == "passphrase":
            secrets = open_sealed(document.get("sealed_secrets"), passphrase)
        elif document.get("protection") == "none" and isinstance(document.get("secrets"), dict):
            secrets = document["secrets"]
        else:
            raise CredentialsError(f"{path} has an unknown protection")
        raw_org = secrets.get("org_keys")
        store = cls(
            auth_private_key=_hex32(secrets.get("auth_private_key"), "auth_private_key"),
            org_keys=None if raw_org is None else OrgKeys.from_dict(raw_org),
        )
        # The clear public keys are what the admin registered; a mismatch means the file was
        # edited or mixed up with another organisation's, and logging in would fail obscurely.
        if document.get("public") != store.public_keys():
            raise CredentialsError(f"{path}: public keys do not match the private keys")
        return store


def org_public_keys(org_keys: OrgKeys) -> dict[str, str]:
    """The organisation's public keys, named as the registry API names them."""
    return {
        "ed25519_public_key": ed25519_public(org_keys.ed25519_private).hex(),
        "x25519_public_key": x25519_public(org_keys.x25519_private).hex(),
    }


def export_org_keys(
    org_keys: OrgKeys, path: str | Path, *, passphrase: str, overwrite: bool = False
) -> dict[str, str]:
    """Write the organisation's private keys to `path`, sealed under `passphrase` (Argon2id +
    XSalsa20-Poly1305, as a keystore), for a second staff member's keystore. There is no
    plaintext form: the file travels (USB stick, shared drive), so it is always sealed.
    Returns the public keys written beside the sealed ones."""
    if not passphrase:
        raise CredentialsError("an export of the organisation's keys needs a passphrase")
    public = org_public_keys(org_keys)
    document: dict[str, Any] = {
        "refcheck_org_keys": ORG_EXPORT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "public": public,
        "protection": "passphrase",
        "sealed_org_keys": seal(org_keys.to_dict(), passphrase),
    }
    write_json_secret(Path(path), document, overwrite=overwrite)
    return public


def import_org_keys(path: str | Path, *, passphrase: str | None) -> OrgKeys:
    """The organisation's keys from a file `export_org_keys` wrote; a wrong passphrase, an
    altered file and public keys that do not belong to the private ones are refused."""
    document = load_json_secret(Path(path))
    if document.get("refcheck_org_keys") != ORG_EXPORT_VERSION:
        raise CredentialsError(f"{path} is not an export of organisation keys (version 1)")
    org_keys = OrgKeys.from_dict(open_sealed(document.get("sealed_org_keys"), passphrase))
    if document.get("public") != org_public_keys(org_keys):
        raise CredentialsError(f"{path}: public keys do not match the private keys")
    return org_keys
