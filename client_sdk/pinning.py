"""Pinning the keys the server hands out (as SSH's known_hosts), so a server cannot swap them.

Two kinds of key reach the SDK through the server, and both are pinned:

* **The network signing key** (Ed25519). It signs every OPRF key announcement and every
  registry filter (docs/protocol.md, "Signed objects"), so it is the one root every DLEQ proof
  and every filter lookup rests on: a server that could show a client a signing key of its own
  could evaluate that client under a private OPRF key (partitioning it from the network, or
  making its checks silently miss) and hand it a filter without the applicant's entries. The
  credentials file the secretariat issues names the network (`network_id`) and the key's
  SHA-256 (`network_signing_key_sha256`); the SDK compares the server's key with them before
  anything else, and never trusts a key on first use: a credentials file without them is
  refused before any request (`NetworkPin.for_credentials`). With it are kept the verified
  OPRF key announcements (each checked against the signing key; `key_seq` never goes back, and
  a rotation's new key is followed once announced) and the policy's `keys_per_check`, so that
  a client with a warm pin file checks a person with no request other than the check itself.
  When the secretariat rotates the signing key, the server shows a new one with its
  `signing_key_history` (docs/protocol.md, "Key rotation"): the SDK follows it only along a chain
  of `signing-key` objects from the key it trusts, each signed by the key before it, and pins the
  new key with the chain, so the credentials' fingerprint stays the anchor and a server cannot
  take the client back to an older key (`NetworkPin.check_offered`).
* **The organisations' public keys** (X25519 to seal to them, Ed25519 to verify what they sign),
  from `GET /v1/directory`. A server that swapped a holder's keys there could read the applicant
  details sealed to it and forge its answer, and the signature check would pass against the
  forged key. So each organisation's pair is pinned the first time it is used, and a change
  raises `OrgKeyChanged` until it is confirmed out of band (`Client.trust_org_keys`).

Pin file (JSON, 0600, one file may serve several servers, keyed by base URL)::

    {"network": {"<base_url>": {"network_id": "demo",
                                "signing_key": "<hex>",
                                "signing_key_history": ["<framed signing-key object, hex>"],
                                "oprf_keys": ["<framed signed oprf-key announcement, hex>"],
                                "keys_per_check": 32}},
     "org_keys": {"<base_url>": {"<org id>": {"short_name": "org-a",
                                              "x25519_public_key": "<hex>",
                                              "ed25519_public_key": "<hex>"}}}}

`short_name` is informational (for a person reading the file); only the keys are compared.
The announcements are kept exactly as signed and verified again when the file is read.
`signing_key_history` holds the rotations the SDK followed, from the key the credentials name to
`signing_key` (empty when that is the credentials' key); it is verified again when the file is
read, and an entry that does not lead from the credentials' key is ignored.
Several clients and processes may share one pin file (the CLI keeps one beside the
credentials), so every write is a locked read-modify-write: a pin written by one is never
dropped by another.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from client_sdk.errors import (
    CredentialsError,
    InvalidResponse,
    KeyChanged,
    OrgKeyChanged,
    SignatureInvalid,
)
from client_sdk.secretfile import load_json_secret, write_json_secret
from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.signed import SignedObject, SigningKeyRotation, follow_signing_keys
from protocol.signed import parse as parse_signed

try:  # POSIX: serialise writers across processes too.
    import fcntl
except ImportError:  # pragma: no cover - Windows keeps the in-process lock only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "NetworkPin",
    "NetworkState",
    "OprfKey",
    "OrgKeyPins",
    "OrgPublicKeys",
    "org_key_fingerprint",
    "signing_key_sha256",
]

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


_SECTIONS = ("network", "org_keys")


def _read_document(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {section: {} for section in _SECTIONS}
    document = load_json_secret(path)
    # "pins" is version 1's section (a bare OPRF key, TOFU): still a pin file, no longer read.
    if not any(name in document for name in (*_SECTIONS, "pins")):
        raise CredentialsError(f"{path} is not a refcheck pin file")
    sections = {name: document.get(name, {}) for name in _SECTIONS}
    if not all(isinstance(value, dict) for value in sections.values()):
        raise CredentialsError(f"{path} is not a refcheck pin file")
    return {**document, **sections}


def _update_document(path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Re-read the pin file under the lock, apply `change`, write it back (0600, atomically)."""
    with _locked(path):
        document = _read_document(path)
        change(document)
        write_json_secret(path, document, overwrite=True)
        return document


# -- the network signing key and the OPRF key announcements -------------------------------

#: Announcements kept per server: the current key and a few before it (a check still open
#: under the previous key, next issue's rotation), not the whole history.
KEPT_ANNOUNCEMENTS = 4

_KEY_ID_MAX = 16

#: Why a credentials file without the network's fingerprint is refused, and what to do.
NO_NETWORK_PIN = (
    "the credentials file does not name the network and its signing key "
    "(network_id, network_signing_key_sha256), so the SDK cannot tell the real server from an "
    "impostor; nothing was sent. Ask the network secretariat for the network signing key's "
    "fingerprint (printed by `refcheck admin principal add` and in the MoU annex) and sign in "
    "again: refcheck login ... --network-fingerprint FINGERPRINT"
)


def signing_key_sha256(public_key: bytes) -> str:
    """The fingerprint a credentials file names: hex SHA-256 of the raw 32-byte Ed25519 key."""
    return hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True)
class OprfKey:
    """One OPRF key of the network, as its signed `oprf-key` announcement states it.

    Only ever built from an announcement verified against the pinned signing key
    (`OprfKey.from_announcement`), which also authenticates `registration_key`, the X25519 key
    registrations are sealed to.

    Usage::

        key = client.oprf_key()          # the newest announced key, verified
        key.key_id, key.key_seq          # "3f2a9c0d1e4b5a67", 1
    """

    key_id: str
    key_seq: int
    public_key: bytes
    registration_key: bytes
    prev_key_id: str | None = None
    #: The framed signed announcement, as the server sent it (kept to re-verify the pin file).
    announcement: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            not self.key_id
            or len(self.key_id) > _KEY_ID_MAX
            or not self.key_id.isascii()
            or self.key_seq < 1
            or len(self.public_key) != 32
            or len(self.registration_key) != 32
        ):
            raise InvalidResponse("an OPRF key announcement has an invalid key id, seq or key")

    @classmethod
    def from_announcement(
        cls,
        framed: bytes,
        *,
        signing_key: bytes,
        network_id: str,
        witnesses: Sequence[bytes] = (),
    ) -> OprfKey:
        """Parse and verify one framed `oprf-key` announcement; `SignatureInvalid` when it is
        not signed by `signing_key` for `network_id` (and cosigned by every witness),
        `InvalidResponse` when it is malformed."""
        from protocol.errors import DeserializeError, InvalidInputError, VerifyError
        from protocol.signed import parse

        try:
            obj = parse(framed)
            obj.verify(signing_key, network_id=network_id, type="oprf-key", witnesses=witnesses)
        except (DeserializeError, InvalidInputError):
            raise InvalidResponse("an OPRF key announcement is malformed") from None
        except VerifyError as exc:
            raise SignatureInvalid(
                f"an OPRF key announcement does not verify against the network signing key ({exc})"
            ) from None
        fields = obj.fields
        key_id, key_seq, prev = (
            fields.get("key_id"),
            fields.get("key_seq"),
            fields.get("prev_key_id"),
        )
        if (
            not isinstance(key_id, str)
            or isinstance(key_seq, bool)
            or not isinstance(key_seq, int)
            or not (prev is None or isinstance(prev, str))
        ):
            raise InvalidResponse("an OPRF key announcement lacks key_id, key_seq or prev_key_id")
        return cls(
            key_id=key_id,
            key_seq=key_seq,
            public_key=_unhex(fields.get("public_key"), 32, "OPRF public key"),
            registration_key=_unhex(fields.get("registration_key"), 32, "registration key"),
            prev_key_id=prev,
            announcement=framed,
        )


@dataclass(frozen=True)
class NetworkState:
    """What a client trusts about one network: its id, signing key, verified OPRF key
    announcements (ascending `key_seq`) and, once read, the policy's `keys_per_check` and
    witnesses."""

    network_id: str
    signing_key: bytes
    keys: tuple[OprfKey, ...]
    keys_per_check: int | None = None
    witnesses: tuple[bytes, ...] = ()
    #: The `signing-key` objects (framed) of the rotations followed from the key the credentials
    #: name to `signing_key`, oldest first; empty when `signing_key` is the credentials' key.
    rotations: tuple[bytes, ...] = ()

    @property
    def current(self) -> OprfKey:
        """The announced key with the highest `key_seq`: the one checks and registrations use."""
        return self.keys[-1]

    @property
    def fingerprint(self) -> str:
        return signing_key_sha256(self.signing_key)

    @property
    def signing_keys(self) -> tuple[bytes, ...]:
        """Every network signing key from the one the credentials name to `signing_key`, oldest
        first: what an object signed before a rotation (a saved tree head) verifies under."""
        if not self.rotations:
            return (self.signing_key,)
        fields = [parse_signed(r).fields for r in self.rotations]
        return (
            bytes.fromhex(str(fields[0]["prev_public_key"])),
            *(bytes.fromhex(str(f["public_key"])) for f in fields),
        )

    def key(self, key_id: str) -> OprfKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "network_id": self.network_id,
            "signing_key": self.signing_key.hex(),
            "signing_key_history": [r.hex() for r in self.rotations],
            "oprf_keys": [k.announcement.hex() for k in self.keys],
            "keys_per_check": self.keys_per_check,
            "witnesses": [w.hex() for w in self.witnesses],
        }


def _merge_keys(
    pinned: Sequence[OprfKey], offered: Sequence[OprfKey], *, what: str
) -> tuple[OprfKey, ...]:
    """The union of two announcement lists, refusing a rollback (the newest offered key older
    than the newest pinned) and two different keys under one `key_seq` or `key_id`."""
    by_seq: dict[int, OprfKey] = {k.key_seq: k for k in pinned}
    for key in offered:
        held = by_seq.get(key.key_seq)
        same_id = next((k for k in by_seq.values() if k.key_id == key.key_id), None)
        if (held is not None and held != key) or (same_id is not None and same_id != key):
            raise KeyChanged(
                f"{what} announces OPRF key {key.key_id} (seq {key.key_seq}) unlike the one "
                "already seen under that sequence number or id: a server showing different "
                "clients different keys",
                pinned_key_id=(held or same_id or key).key_id,
                server_key_id=key.key_id,
            )
        by_seq[key.key_seq] = key
    if pinned and offered and max(k.key_seq for k in offered) < pinned[-1].key_seq:
        newest = max(offered, key=lambda k: k.key_seq)
        raise KeyChanged(
            f"{what} announces OPRF key seq {newest.key_seq} as the newest, but seq "
            f"{pinned[-1].key_seq} was already seen: key sequence numbers never go back",
            pinned_key_id=pinned[-1].key_id,
            server_key_id=newest.key_id,
        )
    merged = [by_seq[seq] for seq in sorted(by_seq)]
    return tuple(merged[-KEPT_ANNOUNCEMENTS:])


#: What a member does about a signing key that cannot be followed.
_ASK_SECRETARIAT = (
    "nothing else was sent. Contact the network secretariat: if they rotated the network "
    "signing key, they give you its new fingerprint (new credentials file); otherwise this "
    "server is not your network's or is impersonated"
)


class NetworkPin:
    """The pinned network signing key of one server, its verified OPRF key announcements and
    the policy values a check needs, in memory and optionally in the pin file.

    `network_id` and `signing_key_sha256` come from the credentials file the secretariat
    issued, and decide: the server's key must be that one, or one the network rotated to from
    it along its signed history (`check_offered`), and a pin file entry that does not lead from
    it is ignored. There is no trust on first use.
    """

    def __init__(
        self,
        server: str,
        *,
        path: Path | None = None,
        network_id: str,
        signing_key_sha256: str,
    ) -> None:
        if not network_id or not signing_key_sha256:
            raise CredentialsError(NO_NETWORK_PIN)
        self.server = server
        self.path = path
        self.expected_network_id = network_id
        self.expected_fingerprint = normalise_fingerprint(signing_key_sha256)
        if len(self.expected_fingerprint) != 64:
            raise CredentialsError("network_signing_key_sha256 must be 64 hex digits")
        self._lock = threading.Lock()
        self._state: NetworkState | None = None
        if path is not None and path.exists():
            self._state = self._anchored(self._from_document(_read_document(path)))

    @classmethod
    def for_credentials(
        cls, server: str, credentials: Any, *, path: Path | None = None
    ) -> NetworkPin:
        """The pin a credentials file names; `CredentialsError` (before any request) when it
        names no network or no signing key fingerprint."""
        network_id = getattr(credentials, "network_id", None)
        fingerprint = getattr(credentials, "network_signing_key_sha256", None)
        if not network_id or not fingerprint:
            raise CredentialsError(NO_NETWORK_PIN)
        return cls(server, path=path, network_id=network_id, signing_key_sha256=fingerprint)

    @property
    def state(self) -> NetworkState | None:
        return self._state

    def _anchored(self, state: NetworkState | None) -> NetworkState | None:
        """`state` (its rotations cut to start at the credentials' key) when it is the
        credentials' network and its signing key is theirs or one followed from theirs; None
        when it does not lead from the credentials (written under other credentials)."""
        if state is None or state.network_id != self.expected_network_id:
            return None
        if state.fingerprint == self.expected_fingerprint:
            return replace(state, rotations=())
        try:
            objects = [parse_signed(r) for r in state.rotations]
            anchor = _rotated_from(objects, self.expected_fingerprint)
            if anchor is None:
                return None
            steps = follow_signing_keys(objects, trusted=anchor, network_id=state.network_id)
        except (DeserializeError, InvalidInputError, VerifyError):
            raise CredentialsError(f"{self.path} has a malformed network pin") from None
        if not steps or steps[-1].public_key != state.signing_key:
            return None
        return replace(state, rotations=tuple(s.signed.framed() for s in steps))

    def _from_document(self, document: Mapping[str, Any]) -> NetworkState | None:
        entry = document["network"].get(self.server)
        if entry is None:
            return None
        try:
            network_id = entry["network_id"]
            signing_key = bytes.fromhex(entry["signing_key"])
            witnesses = tuple(bytes.fromhex(w) for w in entry.get("witnesses") or ())
            rotations = tuple(bytes.fromhex(r) for r in entry.get("signing_key_history") or ())
            keys = tuple(
                OprfKey.from_announcement(
                    bytes.fromhex(a), signing_key=signing_key, network_id=network_id
                )
                for a in entry["oprf_keys"]
            )
            kpc = entry.get("keys_per_check")
            if not isinstance(network_id, str) or len(signing_key) != 32 or not keys:
                raise ValueError
            if kpc is not None and (isinstance(kpc, bool) or not isinstance(kpc, int)):
                raise ValueError
        except (AttributeError, KeyError, TypeError, ValueError, InvalidResponse, SignatureInvalid):
            raise CredentialsError(f"{self.path} has a malformed network pin") from None
        keys = tuple(sorted(keys, key=lambda k: k.key_seq))
        return NetworkState(network_id, signing_key, keys, kpc, witnesses, rotations)

    def check_offered(
        self, network_id: str, signing_key: bytes, history: Sequence[bytes] = ()
    ) -> tuple[SigningKeyRotation, ...]:
        """Refuse (`KeyChanged`) a server that is not the credentials' network, or shows another
        signing key than the one trusted (the credentials', or the one followed last) without a
        signed way to it from that key.

        `history` is the server's `signing_key_history` (framed `signing-key` objects, oldest
        first). A key other than the trusted one is taken only when the history leads to it from
        the trusted key (`protocol.signed.follow_signing_keys`: each rotation signed by the key
        before it and cosigned by the next, for this network, to the history's newest key);
        returns those rotations (empty when the key is the trusted one). A key older than the
        trusted one is refused as a rollback. Nothing is pinned here: `accept` does that."""
        offered = signing_key_sha256(signing_key)
        if network_id != self.expected_network_id:
            raise KeyChanged(
                f"the server says it is network {network_id!r}, but your credentials are for "
                f"network {self.expected_network_id!r}: this is not your network's server; "
                "nothing else was sent",
                pinned_key_id=self.expected_network_id,
                server_key_id=network_id,
            )
        state = self._state
        trusted = state.fingerprint if state is not None else self.expected_fingerprint
        if offered == trusted:
            return ()

        where = (
            "the one your credentials file names"
            if trusted == self.expected_fingerprint
            else "the one this client followed to from the key your credentials file names"
        )

        def refuse(why: str) -> KeyChanged:
            return KeyChanged(
                f"the server's network signing key (SHA-256 {offered}) is not {where} "
                f"({trusted}), and {why}; {_ASK_SECRETARIAT}",
                pinned_key_id=trusted,
                server_key_id=offered,
            )

        if state is not None and signing_key in state.signing_keys:
            raise refuse("it is a key the network rotated away from (a rollback to an older key)")
        try:
            objects = [parse_signed(h) for h in history]
        except (DeserializeError, InvalidInputError):
            raise refuse("its signing key history is malformed") from None
        if not objects:
            raise refuse("the server shows no signing key history that leads to it")
        if any(_names(o, "prev_public_key") == signing_key.hex() for o in objects):
            raise refuse(
                "the server's own history says that key was replaced (a rollback to an older key)"
            )
        start = state.signing_key if state is not None else _rotated_from(objects, trusted)
        if start is None:
            raise refuse("its signing key history does not start from the key you trust")
        try:
            steps = follow_signing_keys(objects, trusted=start, network_id=network_id)
        except (DeserializeError, InvalidInputError, VerifyError) as exc:
            raise refuse(f"a step of its signing key history does not verify ({exc})") from None
        if not steps:
            raise refuse("its signing key history does not start from the key you trust")
        if steps[-1].public_key != signing_key:
            raise refuse("its signing key history does not lead to it")
        return tuple(steps)

    def accept(
        self,
        network_id: str,
        signing_key: bytes,
        announcements: Sequence[bytes],
        *,
        keys_per_check: int | None,
        witnesses: Sequence[bytes] = (),
        signing_key_history: Sequence[bytes] = (),
    ) -> NetworkState:
        """Check the server's signing key against the trusted one (following a rotation along
        `signing_key_history`, see `check_offered`), verify every announcement with it, refuse a
        `key_seq` going back, and pin the result (with the rotations followed)."""
        with self._lock:
            steps = self.check_offered(network_id, signing_key, signing_key_history)
            offered = sorted(
                (
                    OprfKey.from_announcement(
                        a, signing_key=signing_key, network_id=network_id, witnesses=witnesses
                    )
                    for a in announcements
                ),
                key=lambda k: k.key_seq,
            )
            if not offered:
                raise InvalidResponse("the server announces no OPRF key")
            held = self._state
            keys = _merge_keys(held.keys if held is not None else (), offered, what="the server")
            rotations = held.rotations if held is not None else ()
            if steps:
                # Under the new key only what it signed: the server signs every announcement
                # again at a rotation; one it no longer shows was signed by the old key only.
                signed_now = {k.announcement for k in offered}
                keys = tuple(k for k in keys if k.announcement in signed_now)
                rotations += tuple(s.signed.framed() for s in steps)
            state = NetworkState(
                network_id, signing_key, keys, keys_per_check, tuple(witnesses), rotations
            )
            self._state = self._store(state)
        return self._state

    def _store(self, state: NetworkState) -> NetworkState:
        # Called with self._lock held.
        if self.path is None:
            return state
        kept: list[NetworkState] = []

        def change(document: dict[str, Any]) -> None:
            merged = state
            other = self._anchored(self._from_document(document))
            if (
                other is not None
                and other.signing_key != state.signing_key
                and state.signing_key in other.signing_keys
            ):
                # Another client of the file has followed the signing key further already:
                # its entry stays, so that the file never goes back to an older key.
                kept.append(state)
                return
            # Another client sharing the file may have seen newer announcements meanwhile:
            # what it saw counts as seen here too (a server cannot show one client an older key
            # than another), and the file keeps the union.
            if other is not None and other.signing_key == state.signing_key:
                keys = _merge_keys(other.keys, state.keys, what="the server")
                merged = replace(state, keys=keys)
            document["network"][self.server] = merged.to_dict()
            kept.append(merged)

        _update_document(self.path, change)
        return kept[0]


def _names(obj: SignedObject, field_name: str) -> str | None:
    value = obj.fields.get(field_name)
    return value if isinstance(value, str) else None


def _rotated_from(objects: Sequence[SignedObject], fingerprint: str) -> bytes | None:
    """The key with SHA-256 `fingerprint` if some rotation in `objects` replaces it (only a
    credentials fingerprint is known before the first keys call)."""
    for obj in objects:
        prev = _names(obj, "prev_public_key")
        try:
            raw = bytes.fromhex(prev) if prev is not None else b""
        except ValueError:
            continue
        if len(raw) == 32 and signing_key_sha256(raw) == fingerprint:
            return raw
    return None


def _unhex(value: Any, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size or value != raw.hex():
        raise InvalidResponse(f"the {what} is not {size} bytes of lower-case hex")
    return raw


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
