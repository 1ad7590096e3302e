"""A consent's details, sealed to the hiring organisation (docs/api.md, "Consents").

What the HR system knows about a consent, the server must not: the applicant's and the
position's references, the SHA-256 of the signed form and the applicant's self-declaration.
With an HR system's applicant list, any of them in the clear (or an unkeyed hash of them) would
tell a reader of the server's database which applicant a consent, and so a check and a match,
was about. So the SDK seals them to its own organisation's X25519 key and the server stores and
returns one opaque blob of a fixed size; it keeps in the clear only what it enforces (purpose,
expiry, budget, withdrawal, the lookup code's hash).

Construction, as `protocol.disclosure`'s sealed details:

* *Sign, then seal.* The canonical JSON is signed with the organisation's Ed25519 key and the
  signature travels inside the box, so the server (which holds the organisation's *public* key
  and could seal anything to it) cannot forge a consent's details. Rows sealed by the upgrade
  migration from the former plaintext columns carry no signature (the server never held the
  signing key); they open as `signed=False`.
* *Bound to the consent's clear fields*: the sealed object repeats the purpose and the time of
  consent, and `open_details` compares them with what the server says, so details cannot be
  moved unnoticed onto a consent given at another time or for another purpose.
* *Fixed size.* Every blob is `SEALED_SIZE` bytes whatever the references' lengths.
* *Canonical JSON* (sorted keys, no spaces, UTF-8) so the signed bytes are the same whoever
  serialises them.

Pure: no I/O, no clock; randomness comes from libsodium inside `SealedBox`.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing

from protocol.errors import DeserializeError, InvalidInputError, VerifyError

__all__ = [
    "FORMAT_VERSION",
    "PADDED_SIZE",
    "SEALED_SIZE",
    "ConsentDetails",
    "NotSealedToThisKey",
    "OpenedConsentDetails",
    "open_details",
    "seal_details",
]

FORMAT_VERSION = 1

#: Plaintext size inside the box: flag, signature, length, canonical JSON, zero padding. The
#: longest details (two 128-character references, 40-character purpose) take about 600 bytes.
PADDED_SIZE = 1024
#: `SealedBox` adds an ephemeral X25519 public key (32) and a Poly1305 tag (16).
SEALED_SIZE = PADDED_SIZE + 48

_DOMAIN = b"refcheck/v2/consent-details\x00"
_UNSIGNED, _SIGNED = 0, 1
_SIG = 64
_LEN = struct.Struct(">H")
_HEADER = 1 + _SIG + _LEN.size

# References chosen by the HR system. The narrow alphabet (no spaces, no '@') keeps names and
# e-mail addresses out: sealed or not, these must be opaque ids, never identifiers of the
# applicant. Then a lower-case SHA-256 and a policy code (as protocol.messages has them).
_REF = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_FIELDS = frozenset(
    {
        "v",
        "applicant_ref",
        "position_ref",
        "form_sha256",
        "self_declared_finding",
        "purpose",
        "consented_at",
    }
)


class NotSealedToThisKey(VerifyError):
    """The box does not open with this private key: sealed to another key (the organisation's
    key changed since), or altered. Unlike the other `VerifyError`s, nothing was forged that a
    reader of the box could see."""


def _instant(value: datetime) -> str:
    """An aware time as UTC RFC 3339 with microseconds: one spelling per instant."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ConsentDetails:
    """What the HR system recorded about one consent, for its own organisation's eyes only."""

    applicant_ref: str
    position_ref: str
    form_sha256: str
    self_declared_finding: bool
    purpose: str
    consented_at: datetime

    def __post_init__(self) -> None:
        for name in ("applicant_ref", "position_ref"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _REF.fullmatch(value):
                raise InvalidInputError(f"{name} must be 1-128 characters of A-Za-z0-9._:/-")
        if not isinstance(self.form_sha256, str) or not _SHA256.fullmatch(self.form_sha256):
            raise InvalidInputError("form_sha256 must be 64 lower-case hex digits")
        if not isinstance(self.self_declared_finding, bool):
            raise InvalidInputError("self_declared_finding must be true or false")
        if not isinstance(self.purpose, str) or not _CODE.fullmatch(self.purpose):
            raise InvalidInputError("purpose must be a policy code")
        if not isinstance(self.consented_at, datetime) or self.consented_at.tzinfo is None:
            raise InvalidInputError("consented_at must be an aware datetime")

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "applicant_ref": self.applicant_ref,
            "position_ref": self.position_ref,
            "form_sha256": self.form_sha256,
            "self_declared_finding": self.self_declared_finding,
            "purpose": self.purpose,
            "consented_at": _instant(self.consented_at),
        }

    def canonical_bytes(self) -> bytes:
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")

    @classmethod
    def from_canonical(cls, body: bytes) -> ConsentDetails:
        """Parse `canonical_bytes` output strictly (version, fields, canonical form)."""
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DeserializeError("the consent details are not JSON") from None
        if not isinstance(obj, dict) or obj.get("v") != FORMAT_VERSION:
            raise DeserializeError("unknown consent details format")
        if set(obj) != _FIELDS:
            raise DeserializeError("the consent details have the wrong fields")
        try:
            at = obj["consented_at"]
            if not isinstance(at, str):
                raise ValueError
            details = cls(
                applicant_ref=obj["applicant_ref"],
                position_ref=obj["position_ref"],
                form_sha256=obj["form_sha256"],
                self_declared_finding=obj["self_declared_finding"],
                purpose=obj["purpose"],
                consented_at=datetime.fromisoformat(at),
            )
        except (TypeError, ValueError, InvalidInputError):
            raise DeserializeError("the consent details have an invalid field") from None
        if details.canonical_bytes() != body:
            raise DeserializeError("the consent details are not in canonical form")
        return details


@dataclass(frozen=True)
class OpenedConsentDetails:
    """Opened details; `signed` is True when they carry the organisation's signature (always,
    for details the SDK sealed), False for rows sealed by the upgrade from plaintext."""

    details: ConsentDetails
    signed: bool


def _key(raw: bytes, name: str) -> bytes:
    if not isinstance(raw, bytes | bytearray) or len(raw) != 32:
        raise InvalidInputError(f"{name} must be 32 bytes")
    return bytes(raw)


def seal_details(
    details: ConsentDetails, x25519_public: bytes, *, signing_seed: bytes | None
) -> bytes:
    """Seal `details` to the organisation's X25519 public key, signed with its Ed25519 key
    (32-byte seed). `signing_seed=None` only for the upgrade migration, which has no signing
    key. Always exactly `SEALED_SIZE` bytes."""
    body = details.canonical_bytes()
    if signing_seed is None:
        header = bytes([_UNSIGNED]) + bytes(_SIG)
    else:
        signer = nacl.signing.SigningKey(_key(signing_seed, "signing key"))
        header = bytes([_SIGNED]) + bytes(signer.sign(_DOMAIN + body).signature)
    plain = header + _LEN.pack(len(body)) + body
    if len(plain) > PADDED_SIZE:  # not reachable with valid fields; never a larger box
        raise InvalidInputError("the consent details are too long to seal")
    plain += bytes(PADDED_SIZE - len(plain))
    box = nacl.public.SealedBox(nacl.public.PublicKey(_key(x25519_public, "public key")))
    return bytes(box.encrypt(plain))


def open_details(
    sealed: bytes,
    x25519_private: bytes,
    ed25519_public: bytes,
    *,
    purpose: str,
    consented_at: datetime,
) -> OpenedConsentDetails:
    """Open a consent's sealed details with the organisation's X25519 private key, verify its
    signature (when signed) against the organisation's Ed25519 public key, and check that they
    belong to a consent of this `purpose` given at `consented_at` (as the server shows it).

    Raises `NotSealedToThisKey` (a `VerifyError`) when the box does not open with this key;
    `VerifyError` when the signature does not verify or the details name another purpose or
    time (the server moved them); `DeserializeError` when they are malformed.
    """
    if not isinstance(sealed, bytes | bytearray) or len(sealed) != SEALED_SIZE:
        raise DeserializeError("the sealed consent details have the wrong size")
    box = nacl.public.SealedBox(nacl.public.PrivateKey(_key(x25519_private, "private key")))
    try:
        plain = bytes(box.decrypt(bytes(sealed)))
    except nacl.exceptions.CryptoError:
        raise NotSealedToThisKey("the consent details do not open with this key") from None
    if len(plain) != PADDED_SIZE:
        raise DeserializeError("the consent details have the wrong size")
    flag, signature = plain[0], plain[1 : 1 + _SIG]
    (length,) = _LEN.unpack_from(plain, 1 + _SIG)
    end = _HEADER + length
    if flag not in (_UNSIGNED, _SIGNED) or end > PADDED_SIZE or any(plain[end:]):
        raise DeserializeError("the consent details are not correctly padded")
    body = plain[_HEADER:end]
    if flag == _SIGNED:
        try:
            verifier = nacl.signing.VerifyKey(_key(ed25519_public, "public key"))
            verifier.verify(_DOMAIN + body, signature)
        except nacl.exceptions.BadSignatureError:
            raise VerifyError("the consent details are not signed by this organisation") from None
    elif any(signature):
        raise DeserializeError("unsigned consent details carry a signature")
    details = ConsentDetails.from_canonical(body)
    if details.purpose != purpose or details.consented_at != consented_at:
        raise VerifyError("the consent details belong to another consent")
    return OpenedConsentDetails(details=details, signed=flag == _SIGNED)
