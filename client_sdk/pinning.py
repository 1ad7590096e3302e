"""Pinning the keys the server hands out, on first use (trust on first use, as SSH's known_hosts).

Two kinds of key reach the SDK through the server, and both are pinned:

* **The OPRF key.** Every DLEQ proof only shows that the server used *the key we verify
  against*. If the SDK simply trusted whatever key `/v1/oprf/key` returns today, a server could
  evaluate one client under a private key of its own (partitioning it from the network, or
  making its checks silently miss) and publish that key to that client alone. So the first key
  seen is pinned, and a different one later raises `KeyChanged` until someone updates the pin
  deliberately after the network announced a rotation.
* **The organisations' public keys** (X25519 to seal to them, Ed25519 to verify what they sign),
  from `GET /v1/directory`. A server that swapped a holder's keys there could read the applicant
  details sealed to it and forge its answer, and the signature check would pass against the
  forged key. So each organisation's pair is pinned the first time it is used, and a change
  raises `OrgKeyChanged` until it is confirmed out of band (`Client.trust_org_keys`).

Pin file (JSON, 0600, one file may serve several servers, keyed by base URL)::

    {"pins": {"<base_url>": {"key_id": "...", "public_key": "<hex>"}},
     "org_keys": {"<base_url>": {"<org id>": {"short_name": "org-a",
                                              "x25519_public_key": "<hex>",
                                              "ed25519_public_key": "<hex>"}}}}

`short_name` is informational (for a person reading the file); only the keys are compared.
Several clients and processes may share one pin file (the CLI keeps one beside the
credentials), so every write is a locked read-modify-write: a pin written by one is never
dropped by another.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client_sdk.errors import CredentialsError, InvalidResponse, KeyChanged, OrgKeyChanged
from client_sdk.secretfile import load_json_secret, write_json_secret

try:  # POSIX: serialise writers across processes too.
    import fcntl
except ImportError:  # pragma: no cover - Windows keeps the in-process lock only
    fcntl = None  # type: ignore[assignment]

__all__ = ["KeyPin", "OrgKeyPins", "OrgPublicKeys", "PinnedKey", "org_key_fingerprint"]

_FINGERPRINT_DOMAIN = b"refcheck/v1/org-keys\x00"


# -- the pin file ---------------------------------------------------------------------------

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive access to one pin file: a lock per path within the process (two clients of
    one program, the demo's two parties), and `flock` on a sibling lock file across processes
    (two `refcheck` runs at once). Without it, two first uses racing would each write the
    file as they read it and one pin would be lost, to be taken again on trust later."""
    key = path.resolve()
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        if fcntl is None:
            yield
            return
        key.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key.with_name(f".{key.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _read_document(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"pins": {}, "org_keys": {}}
    document = load_json_secret(path)
    pins, org_keys = document.get("pins", {}), document.get("org_keys", {})
    if ("pins" not in document and "org_keys" not in document) or not (
        isinstance(pins, dict) and isinstance(org_keys, dict)
    ):
        raise CredentialsError(f"{path} is not a refcheck pin file")
    return {**document, "pins": pins, "org_keys": org_keys}


def _update_document(path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Re-read the pin file under the lock, apply `change`, write it back (0600, atomically)."""
    with _locked(path):
        document = _read_document(path)
        change(document)
        write_json_secret(path, document, overwrite=True)
        return document


# -- the OPRF key ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PinnedKey:
    """The server's published OPRF public key and its id.

    Usage::

        PinnedKey(key_id="3f2a...", public_key=bytes.fromhex("..."))  # from an announcement
    """

    key_id: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not self.key_id or len(self.public_key) != 32:
            raise InvalidResponse("an OPRF key is a key id and 32 bytes")

    def to_dict(self) -> dict[str, str]:
        return {"key_id": self.key_id, "public_key": self.public_key.hex()}


class KeyPin:
    """The pinned OPRF key for one server, in memory and optionally in a pin file.

    The pin file maps a server (its base URL) to its key, so one file can serve several
    networks. Without a file the pin lives as long as the client object.
    """

    def __init__(
        self, server: str, *, pinned: PinnedKey | None = None, path: Path | None = None
    ) -> None:
        self.server = server
        self.path = path
        self._lock = threading.Lock()
        self._pinned = pinned
        if pinned is None and path is not None and path.exists():
            self._pinned = self._read_file().get(server)

    @property
    def pinned(self) -> PinnedKey | None:
        return self._pinned

    def _read_file(self) -> dict[str, PinnedKey]:
        assert self.path is not None
        return _parse_key_pins(self.path, _read_document(self.path)["pins"])

    def check(self, offered: PinnedKey) -> PinnedKey:
        """Accept `offered` if it is the pinned key, or pin it if nothing is pinned yet."""
        with self._lock:
            pinned = self._pinned
            if pinned is None:
                pinned = self._pin_first(offered)
                self._pinned = pinned
        if pinned != offered:
            raise KeyChanged(
                "the server's OPRF key is not the pinned one; accept a new key only after the "
                "network has announced a rotation",
                pinned_key_id=pinned.key_id,
                server_key_id=offered.key_id,
            )
        return pinned

    def _pin_first(self, offered: PinnedKey) -> PinnedKey:
        """Pin `offered` unless another client pinned a key in the file meanwhile; that one
        wins (and `offered` is then compared with it)."""
        if self.path is None:
            return offered
        path = self.path
        kept: list[PinnedKey] = []

        def change(document: dict[str, Any]) -> None:
            existing = _parse_key_pins(path, document["pins"]).get(self.server)
            if existing is None:
                document["pins"][self.server] = offered.to_dict()
            kept.append(existing or offered)

        _update_document(path, change)
        return kept[0]


def _parse_key_pins(path: Path, pins: Mapping[str, Any]) -> dict[str, PinnedKey]:
    out: dict[str, PinnedKey] = {}
    for server, entry in pins.items():
        try:
            out[server] = PinnedKey(entry["key_id"], bytes.fromhex(entry["public_key"]))
        except (KeyError, TypeError, ValueError, InvalidResponse):
            raise CredentialsError(f"{path} has a malformed pin") from None
    return out


# -- organisations' public keys --------------------------------------------------------------


def org_key_fingerprint(x25519_public: bytes, ed25519_public: bytes) -> str:
    """A short, readable digest of an organisation's two public keys, for comparing them by
    phone or in the MoU annex: SHA-256 over a domain tag and both keys, the first 16 bytes as
    eight groups of four hex digits. 128 bits leave no room to craft another key pair with the
    same fingerprint."""
    digest = hashlib.sha256(_FINGERPRINT_DOMAIN + x25519_public + ed25519_public).hexdigest()
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


def normalise_fingerprint(value: str) -> str:
    """Lower-case hex digits only: a fingerprint read out with spaces, colons or dashes
    compares equal to the printed one."""
    return "".join(c for c in value.lower() if c in "0123456789abcdef")


@dataclass(frozen=True)
class OrgPublicKeys:
    """An organisation's public keys: X25519 (seal to it) and Ed25519 (verify its signature).

    `short_name` is what the directory calls the organisation; it is not part of what is
    pinned or compared.
    """

    org_id: str
    x25519: bytes
    ed25519: bytes
    short_name: str = ""

    def __post_init__(self) -> None:
        if not self.org_id or len(self.x25519) != 32 or len(self.ed25519) != 32:
            raise InvalidResponse("an organisation's keys are an id and two 32-byte keys")

    @property
    def fingerprint(self) -> str:
        return org_key_fingerprint(self.x25519, self.ed25519)

    def same_keys(self, other: OrgPublicKeys) -> bool:
        mine = (self.org_id, self.x25519, self.ed25519)
        return mine == (other.org_id, other.x25519, other.ed25519)

    def to_dict(self) -> dict[str, str]:
        return {
            "short_name": self.short_name,
            "x25519_public_key": self.x25519.hex(),
            "ed25519_public_key": self.ed25519.hex(),
        }

    @classmethod
    def from_directory(cls, entry: Mapping[str, Any]) -> OrgPublicKeys:
        """From one `GET /v1/directory` item; `InvalidResponse` when a key is missing or is not
        32 bytes of hex (an organisation without keys cannot take part in a disclosure)."""
        org_id = entry.get("id")
        if not isinstance(org_id, str) or not org_id:
            raise InvalidResponse("a directory entry has no id")
        return cls(
            org_id=org_id,
            x25519=_unhex32(entry.get("x25519_public_key"), "X25519 key"),
            ed25519=_unhex32(entry.get("ed25519_public_key"), "Ed25519 key"),
            short_name=str(entry.get("short_name") or ""),
        )


def _unhex32(value: Any, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidResponse(f"the directory has no valid {what} for this organisation")
    return raw


class OrgKeyPins:
    """The pinned public keys of the organisations this client has dealt with on one server,
    in memory and optionally in the pin file (`org_keys` section)."""

    def __init__(self, server: str, *, path: Path | None = None) -> None:
        self.server = server
        self.path = path
        self._lock = threading.Lock()
        self._pinned: dict[str, OrgPublicKeys] = {}
        if path is not None and path.exists():
            self._pinned = self._from_document(_read_document(path))

    def _from_document(self, document: Mapping[str, Any]) -> dict[str, OrgPublicKeys]:
        section = document["org_keys"].get(self.server) or {}
        out: dict[str, OrgPublicKeys] = {}
        try:
            for org_id, entry in section.items():
                out[org_id] = OrgPublicKeys(
                    org_id=org_id,
                    x25519=bytes.fromhex(entry["x25519_public_key"]),
                    ed25519=bytes.fromhex(entry["ed25519_public_key"]),
                    short_name=str(entry.get("short_name") or ""),
                )
        except (AttributeError, KeyError, TypeError, ValueError, InvalidResponse):
            raise CredentialsError(f"{self.path} has a malformed organisation key pin") from None
        return out

    def pinned(self, org_id: str) -> OrgPublicKeys | None:
        return self._pinned.get(org_id)

    def check(self, offered: OrgPublicKeys) -> OrgPublicKeys:
        """Accept `offered` if it holds the pinned keys, or pin it if this organisation has no
        pin yet; otherwise raise `OrgKeyChanged`."""
        with self._lock:
            pinned = self._pinned.get(offered.org_id)
            if pinned is None:
                pinned = self._store(offered, replace=False)
        if not pinned.same_keys(offered):
            raise _changed(pinned, offered)
        return pinned

    def replace(self, keys: OrgPublicKeys) -> OrgPublicKeys:
        """Pin `keys` whatever was pinned before: only after the organisation confirmed them
        out of band."""
        with self._lock:
            return self._store(keys, replace=True)

    def _store(self, keys: OrgPublicKeys, *, replace: bool) -> OrgPublicKeys:
        # Called with self._lock held.
        if self.path is None:
            self._pinned[keys.org_id] = keys
            return keys
        result: dict[str, OrgPublicKeys] = {}

        def change(document: dict[str, Any]) -> None:
            current = self._from_document(document)
            # Another client may have pinned this organisation in the file meanwhile: on first
            # use its pin wins, so that the first key seen stays the one trusted.
            if replace or keys.org_id not in current:
                document["org_keys"].setdefault(self.server, {})[keys.org_id] = keys.to_dict()
                current[keys.org_id] = keys
            result.update(current)

        _update_document(self.path, change)
        self._pinned = result
        return result[keys.org_id]


def _changed(pinned: OrgPublicKeys, offered: OrgPublicKeys) -> OrgKeyChanged:
    changed = tuple(
        name
        for name, old, new in (
            ("x25519", pinned.x25519, offered.x25519),
            ("ed25519", pinned.ed25519, offered.ed25519),
        )
        if old != new
    )
    org = offered.short_name or pinned.short_name or offered.org_id
    return OrgKeyChanged(
        f"the directory's public keys for {org} ({', '.join(changed)}) are not the ones pinned "
        f"(fingerprint {pinned.fingerprint}, now {offered.fingerprint}): the server may be "
        f"trying to read what you seal to {org} or to forge its answer. Confirm the new "
        f"fingerprint with {org} out of band, then run `refcheck keys trust {org} "
        f"--fingerprint FINGERPRINT` (or Client.trust_org_keys)",
        org_id=offered.org_id,
        org=org,
        pinned_fingerprint=pinned.fingerprint,
        directory_fingerprint=offered.fingerprint,
        changed=changed,
    )
