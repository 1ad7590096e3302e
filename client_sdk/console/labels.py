"""Private case labels: a short note a focal point keeps about each of its cases ("dismissal
in Palu, 2025"), shown only to the holder.

The server has no field for it (a case there holds metadata only), so the console keeps the
labels on this machine, in its own file beside the credentials (`<name>.console-labels.json`,
0600), encrypted with XSalsa20-Poly1305 under a key derived from the credentials' private
authentication key: a copy of the file without the credentials reads as noise, and the labels
never leave this machine. A label is for the holder's memory, never a name or an identifier;
the page says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.secret
import nacl.utils

from client_sdk.credentials import Credentials
from client_sdk.errors import CredentialsError
from client_sdk.secretfile import load_json_secret, write_json_secret

__all__ = ["MAX_LABEL", "LabelStore", "labels_file"]

MAX_LABEL = 120
FORMAT = 1


def labels_file(credentials_path: Path) -> Path:
    return credentials_path.with_name(credentials_path.stem + ".console-labels.json")


def _key(credentials: Credentials) -> bytes:
    key: bytes = nacl.hash.blake2b(
        credentials.auth_private_key,
        key=b"refcheck/console/labels",
        digest_size=nacl.secret.SecretBox.KEY_SIZE,
        encoder=nacl.encoding.RawEncoder,
    )
    return key


class LabelStore:
    """Labels by case id, read and written whole (a focal point holds tens of cases)."""

    def __init__(self, path: Path, credentials: Credentials) -> None:
        self.path = path
        self._box = nacl.secret.SecretBox(_key(credentials))
        self._scope = f"{credentials.base_url or ''}|{credentials.org_id or ''}"

    def _load_all(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        document = load_json_secret(self.path)
        if document.get("refcheck_console_labels") != FORMAT:
            raise CredentialsError(f"{self.path} is not a console labels file")
        try:
            plain = self._box.decrypt(bytes.fromhex(str(document.get("ciphertext", ""))))
        except (nacl.exceptions.CryptoError, ValueError):
            raise CredentialsError(
                f"{self.path} does not open with these credentials' key"
            ) from None
        data = json.loads(plain)
        if not isinstance(data, dict):
            raise CredentialsError(f"{self.path} is malformed")
        return data

    def all(self) -> dict[str, str]:
        return dict(self._load_all().get(self._scope, {}))

    def set(self, case_id: str, label: str) -> None:
        label = " ".join(label.split())[:MAX_LABEL]
        data = self._load_all()
        scoped = data.setdefault(self._scope, {})
        if label:
            scoped[case_id] = label
        else:
            scoped.pop(case_id, None)
        ciphertext = self._box.encrypt(json.dumps(data, sort_keys=True).encode("utf-8"))
        write_json_secret(
            self.path,
            {"refcheck_console_labels": FORMAT, "ciphertext": bytes(ciphertext).hex()},
            overwrite=True,
        )
