"""Files that hold private keys: written 0600 and atomically, refused when others can read them,
optionally sealed with a passphrase.

A passphrase-sealed secret is encrypted with XSalsa20-Poly1305 (`nacl.secret.SecretBox`) under a
key stretched from the passphrase by Argon2id (`nacl.pwhash.argon2id`), so a copied file is
useless without the passphrase and a guessed passphrase costs the attacker a memory-hard hash.
Service accounts that cannot type a passphrase keep plaintext files, protected by their 0600 mode
(and refused at load time when that mode has been loosened, as OpenSSH does with private keys).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from client_sdk.errors import CredentialsError

__all__ = ["load_json_secret", "open_sealed", "seal", "write_json_secret"]

KDF = "argon2id"


def seal(
    secrets: dict[str, Any],
    passphrase: str,
    *,
    opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
    memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
) -> dict[str, Any]:
    """Encrypt a JSON-able dict under a passphrase; returns the JSON-able envelope.

    The interactive Argon2id limits are libsodium's recommendation for a key unlocked on every
    command; the limits are stored with the envelope so they can be raised later.
    """
    if not passphrase:
        raise CredentialsError("an empty passphrase protects nothing")
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_stretch(passphrase, salt, opslimit, memlimit))
    ciphertext = box.encrypt(json.dumps(secrets, sort_keys=True).encode("utf-8"))
    return {
        "kdf": KDF,
        "opslimit": opslimit,
        "memlimit": memlimit,
        "salt": salt.hex(),
        "ciphertext": bytes(ciphertext).hex(),
    }


def _stretch(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    """The SecretBox key for `passphrase`: Argon2id with the envelope's salt and limits, the
    same derivation for sealing and opening."""
    key: bytes = nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        passphrase.encode("utf-8"),
        salt,
        opslimit=opslimit,
        memlimit=memlimit,
    )
    return key


def open_sealed(envelope: Any, passphrase: str | None) -> dict[str, Any]:
    """Decrypt what `seal` produced; a wrong passphrase and a tampered file look alike."""
    if passphrase is None:
        raise CredentialsError("this file is protected by a passphrase; none was given")
    if not isinstance(envelope, dict) or envelope.get("kdf") != KDF:
        raise CredentialsError("unknown protection of sealed secrets")
    try:
        salt = bytes.fromhex(envelope["salt"])
        ciphertext = bytes.fromhex(envelope["ciphertext"])
        opslimit = int(envelope["opslimit"])
        memlimit = int(envelope["memlimit"])
    except (KeyError, TypeError, ValueError):
        raise CredentialsError("sealed secrets are malformed") from None
    # Bounds stop a crafted file from making us allocate gigabytes or spin for hours.
    if not (
        nacl.pwhash.argon2id.OPSLIMIT_MIN <= opslimit <= nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
        and nacl.pwhash.argon2id.MEMLIMIT_MIN <= memlimit <= nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
    ):
        raise CredentialsError("sealed secrets name out-of-range key-stretching limits")
    try:
        key = _stretch(passphrase, salt, opslimit, memlimit)
        plaintext = nacl.secret.SecretBox(key).decrypt(ciphertext)
    except (nacl.exceptions.CryptoError, ValueError):
        raise CredentialsError("wrong passphrase, or the file was altered") from None
    secrets = json.loads(plaintext)
    if not isinstance(secrets, dict):
        raise CredentialsError("sealed secrets are malformed")
    return secrets


def write_json_secret(path: Path, document: dict[str, Any], *, overwrite: bool = False) -> None:
    """Write JSON readable by the owner only, atomically (a crash leaves the old file or none).

    The temporary file is created 0600 from the start: writing then chmod-ing would leave a
    window in which the secret is world-readable.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CredentialsError(f"{path} exists; refusing to overwrite a key file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_json_secret(path: Path) -> dict[str, Any]:
    """Read a key-holding JSON file, refusing one that group or others may read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CredentialsError(f"{path} does not exist") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"{path} is accessible by group or others; run `chmod 600 {path}` first"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CredentialsError(f"{path} is not a readable JSON file") from exc
    if not isinstance(document, dict):
        raise CredentialsError(f"{path} does not hold a JSON object")
    return document
