"""The disclosure step's end-to-end formats (design/protocol.md, "Disclosure").

Two messages travel through the server without the server being able to read them:

* **the holder's answer**: a versioned canonical JSON object, signed with the holder
  organisation's Ed25519 key and sealed (`nacl.public.SealedBox`) to the requester
  organisation's X25519 key;
* **the applicant's details** a requester may attach so the holder can confirm it is the same
  person: sealed to the holder's X25519 key, optionally signed by the requester organisation.

Why the details of the construction:

* *Sign, then seal.* The signature is inside the box, so the server cannot even tell who signed;
  and because the signed message names the request and both organisations (with a domain tag),
  a signed answer cannot be replayed onto another request or to another requester
  (`open_answer` compares them with what the caller expects).
* *Fixed size.* Every sealed answer is exactly `SEALED_ANSWER_SIZE` bytes and every sealed
  details blob `SEALED_DETAILS_SIZE` bytes: a "not the same person" answer is a few dozen bytes
  of JSON, a confirmation with a sanction and free text a few hundred, so without padding the
  ciphertext length would tell the server the verdict it is meant never to learn.
* *Canonical JSON* (sorted keys, no spaces, UTF-8, absent fields omitted) so the signed bytes
  are the same whoever serialises them.

Pure: no I/O, no clock; randomness comes from libsodium inside `SealedBox`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing

from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.identity import PERSON_FIELDS
from protocol.vocabulary import Category, Sanction

__all__ = [
    "ANSWER_PADDED_SIZE",
    "APPLICANT_FIELDS",
    "CATEGORIES",
    "DETAILS_PADDED_SIZE",
    "FORMAT_VERSION",
    "SAME_PERSON",
    "SANCTIONS",
    "SEALED_ANSWER_SIZE",
    "SEALED_DETAILS_SIZE",
    "Answer",
    "ApplicantDetails",
    "OpenedDetails",
    "open_answer",
    "open_applicant_details",
    "seal_answer",
    "seal_applicant_details",
]

FORMAT_VERSION = 1

#: What the holder says about the person the requester asks about.
SAME_PERSON = ("confirmed", "not_same_person", "declined")
#: The network's categories and sanctions (domain.md); the server's policy uses the same words.
CATEGORIES: tuple[Category, ...] = tuple(Category)
SANCTIONS: tuple[Sanction, ...] = tuple(Sanction)
#: Fields a requester may put in the applicant's details (those of `protocol.identity.Person`,
#: plus other names the applicant declared and a short note).
APPLICANT_FIELDS = (*PERSON_FIELDS, "other_names", "note")

_ANSWER_DOMAIN = b"refcheck/v1/disclosure-answer"
_DETAILS_DOMAIN = b"refcheck/v1/applicant-details"

#: Plaintext size inside the sealed box (signature, length, canonical JSON, zero padding).
ANSWER_PADDED_SIZE = 4096
DETAILS_PADDED_SIZE = 2048
#: `SealedBox` adds an ephemeral X25519 public key (32) and a Poly1305 tag (16).
_SEAL_OVERHEAD = 48
SEALED_ANSWER_SIZE = ANSWER_PADDED_SIZE + _SEAL_OVERHEAD
SEALED_DETAILS_SIZE = DETAILS_PADDED_SIZE + _SEAL_OVERHEAD

_SIG = 64
_LEN = struct.Struct(">H")
_ANSWER_HEADER = _SIG + _LEN.size
# details: flag byte (0 unsigned, 1 signed), signature (zeros when unsigned), length
_DETAILS_HEADER = 1 + _SIG + _LEN.size

_MAX_ID = 64
_MAX_TEXT = 1500
_MAX_CONTACT = 200
_MAX_DECLINE_REASON = 500
_MAX_FIELD = 300


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _text(value: Any, name: str, limit: int, *, required: bool = False) -> None:
    if value is None:
        if required:
            raise InvalidInputError(f"{name} is required")
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be non-empty text")
    if len(value) > limit:
        raise InvalidInputError(f"{name} has more than {limit} characters")


def _length_prefixed(*parts: str) -> bytes:
    out = b""
    for part in parts:
        raw = part.encode("utf-8")
        out += _LEN.pack(len(raw)) + raw
    return out


def _key(raw: bytes, name: str) -> bytes:
    if not isinstance(raw, bytes | bytearray) or len(raw) != 32:
        raise InvalidInputError(f"{name} must be 32 bytes")
    return bytes(raw)


def _pad(header: bytes, body: bytes, size: int, what: str) -> bytes:
    plain = header + _LEN.pack(len(body)) + body
    if len(plain) > size:
        # Refused rather than sent in a larger box: a longer ciphertext would stand out.
        raise InvalidInputError(f"the {what} is too long to seal (shorten the free text)")
    return plain + bytes(size - len(plain))


def _unpad(plain: bytes, header_size: int, size: int, what: str) -> bytes:
    if len(plain) != size:
        raise DeserializeError(f"the {what} has the wrong size")
    (length,) = _LEN.unpack_from(plain, header_size - _LEN.size)
    end = header_size + length
    if end > size or any(plain[end:]):
        raise DeserializeError(f"the {what} is not correctly padded")
    return plain[header_size:end]


def _load_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DeserializeError(f"the {what} is not JSON") from None
    if not isinstance(obj, dict):
        raise DeserializeError(f"the {what} is not a JSON object")
    return obj


def _open_box(sealed: bytes, private_key: bytes, expected_size: int, what: str) -> bytes:
    if len(sealed) != expected_size:
        raise DeserializeError(f"the sealed {what} has the wrong size")
    box = nacl.public.SealedBox(nacl.public.PrivateKey(_key(private_key, "private key")))
    try:
        return bytes(box.decrypt(sealed))
    except nacl.exceptions.CryptoError:
        # Not sealed to this key, or altered on the way: either way nothing can be trusted.
        raise VerifyError(f"the sealed {what} does not open with this key") from None


def _verify(public_key: bytes, message: bytes, signature: bytes, what: str) -> None:
    try:
        nacl.signing.VerifyKey(_key(public_key, "public key")).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        raise VerifyError(f"the {what} is not signed by the expected organisation") from None


# --- the holder's answer ------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """The holder's answer to one disclosure request (the standard disclosure format).

    `same_person`: `confirmed` (the record is about the applicant; `category`, `finding_date`
    and `sanction` are then required), `not_same_person` (the match was a coincidence of keys),
    or `declined` (the holder will not answer; `decline_reason` required). Finding fields are
    refused on any answer but a confirmation: a "not the same person" answer carrying a finding
    would disclose someone else's record.
    """

    request_id: str
    holder_org_id: str
    requester_org_id: str
    same_person: str
    category: str | None = None
    child_victim: bool | None = None
    finding_date: date | None = None
    sanction: str | None = None
    text: str | None = None
    contact: str | None = None
    decline_reason: str | None = None

    def __post_init__(self) -> None:
        for name in ("request_id", "holder_org_id", "requester_org_id"):
            _text(getattr(self, name), name, _MAX_ID, required=True)
        if self.same_person not in SAME_PERSON:
            raise InvalidInputError(f"same_person must be one of {', '.join(SAME_PERSON)}")
        finding = (self.category, self.child_victim, self.finding_date, self.sanction)
        if self.same_person == "confirmed":
            if self.category is None or self.finding_date is None or self.sanction is None:
                raise InvalidInputError("a confirmation needs category, finding_date and sanction")
        elif any(v is not None for v in finding):
            raise InvalidInputError("only a confirmation may carry the finding")
        if self.category is not None and self.category not in CATEGORIES:
            raise InvalidInputError(f"category must be one of {', '.join(CATEGORIES)}")
        if self.sanction is not None and self.sanction not in SANCTIONS:
            raise InvalidInputError(f"sanction must be one of {', '.join(SANCTIONS)}")
        if self.child_victim is not None and not isinstance(self.child_victim, bool):
            raise InvalidInputError("child_victim must be true or false")
        # A datetime is a date too; a finding is dated by the calendar day only.
        if self.finding_date is not None and type(self.finding_date) is not date:
            raise InvalidInputError("finding_date must be a date")
        if self.same_person == "declined":
            _text(self.decline_reason, "decline_reason", _MAX_DECLINE_REASON, required=True)
        elif self.decline_reason is not None:
            raise InvalidInputError("only a declined answer has a decline_reason")
        _text(self.text, "text", _MAX_TEXT)
        _text(self.contact, "contact", _MAX_CONTACT)

    def to_dict(self) -> dict[str, Any]:
        """The canonical object (absent fields omitted), as signed and sealed."""
        out: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "request_id": self.request_id,
            "holder_org_id": self.holder_org_id,
            "requester_org_id": self.requester_org_id,
            "same_person": self.same_person,
        }
        optional: dict[str, Any] = {
            "category": self.category,
            "child_victim": self.child_victim,
            "finding_date": None if self.finding_date is None else self.finding_date.isoformat(),
            "sanction": self.sanction,
            "text": self.text,
            "contact": self.contact,
            "decline_reason": self.decline_reason,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    def canonical_bytes(self) -> bytes:
        return _canonical(self.to_dict())

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Answer:
        """Parse `to_dict` output strictly: unknown version or fields raise DeserializeError."""
        if obj.get("v") != FORMAT_VERSION:
            raise DeserializeError("unknown answer format version")
        allowed = set(cls.__dataclass_fields__) | {"v"}
        if not set(obj) <= allowed:
            raise DeserializeError("the answer has unknown fields")
        values = {k: v for k, v in obj.items() if k != "v"}
        raw_date = values.get("finding_date")
        try:
            if raw_date is not None:
                if not isinstance(raw_date, str):
                    raise ValueError
                values["finding_date"] = date.fromisoformat(raw_date)
            answer = cls(**values)
        except (TypeError, ValueError, InvalidInputError):
            raise DeserializeError("the answer has an invalid field") from None
        if answer.to_dict() != dict(obj):
            raise DeserializeError("the answer is not in canonical form")
        return answer


def _answer_message(answer: Answer, canonical: bytes) -> bytes:
    # The ids come first, length-prefixed, so the signed bytes name the request and both
    # organisations whatever the JSON holds; `open_answer` also checks the JSON's copy.
    return (
        _ANSWER_DOMAIN
        + b"\x00"
        + _length_prefixed(answer.request_id, answer.holder_org_id, answer.requester_org_id)
        + canonical
    )


def seal_answer(
    answer: Answer, holder_signing_seed: bytes, requester_x25519_public: bytes
) -> bytes:
    """Sign `answer` with the holder's Ed25519 key (32-byte seed) and seal it to the requester's
    X25519 public key. Always returns exactly `SEALED_ANSWER_SIZE` bytes."""
    canonical = answer.canonical_bytes()
    signer = nacl.signing.SigningKey(_key(holder_signing_seed, "holder signing key"))
    signature = signer.sign(_answer_message(answer, canonical)).signature
    plain = _pad(bytes(signature), canonical, ANSWER_PADDED_SIZE, "answer")
    box = nacl.public.SealedBox(
        nacl.public.PublicKey(_key(requester_x25519_public, "requester public key"))
    )
    return bytes(box.encrypt(plain))


def open_answer(
    sealed: bytes,
    requester_x25519_private: bytes,
    holder_ed25519_public: bytes,
    expected_request_id: str,
    *,
    expected_holder_org_id: str | None = None,
    expected_requester_org_id: str | None = None,
) -> Answer:
    """Open a sealed answer, verify the holder's signature and that it answers this request.

    Raises `VerifyError` when the box does not open with this key, the signature is not the
    holder's (a forged answer), or the answer names another request or organisation (a
    replayed one); `DeserializeError` when a correctly signed answer is malformed.
    """
    plain = _open_box(sealed, requester_x25519_private, SEALED_ANSWER_SIZE, "answer")
    canonical = _unpad(plain, _ANSWER_HEADER, ANSWER_PADDED_SIZE, "answer")
    signature = plain[:_SIG]
    obj = _load_object(canonical, "answer")
    ids = [obj.get(k) for k in ("request_id", "holder_org_id", "requester_org_id")]
    named = [i for i in ids if isinstance(i, str)]
    if len(named) != len(ids):
        raise VerifyError("the answer does not name its request")
    message = _ANSWER_DOMAIN + b"\x00" + _length_prefixed(*named) + canonical
    _verify(holder_ed25519_public, message, signature, "answer")
    answer = Answer.from_dict(obj)
    if answer.request_id != expected_request_id:
        raise VerifyError("the answer was made for another request")
    if expected_holder_org_id is not None and answer.holder_org_id != expected_holder_org_id:
        raise VerifyError("the answer names another holder organisation")
    if (
        expected_requester_org_id is not None
        and answer.requester_org_id != expected_requester_org_id
    ):
        raise VerifyError("the answer was made for another requester")
    return answer


# --- the applicant's details ----------------------------------------------------------------


@dataclass(frozen=True)
class ApplicantDetails:
    """Who the requester is asking about, for the holder's eyes only.

    Bound to the consent, the matched entry and both organisations, so details sealed for one
    request cannot be presented as belonging to another.
    """

    consent_id: str
    entry_id: str
    requester_org_id: str
    holder_org_id: str
    applicant: Mapping[str, str]

    def __post_init__(self) -> None:
        for name in ("consent_id", "entry_id", "requester_org_id", "holder_org_id"):
            _text(getattr(self, name), name, _MAX_ID, required=True)
        if not isinstance(self.applicant, Mapping) or not self.applicant:
            raise InvalidInputError("applicant details need at least one field")
        unknown = sorted(set(self.applicant) - set(APPLICANT_FIELDS))
        if unknown:
            raise InvalidInputError(f"unknown applicant fields: {', '.join(unknown)}")
        for name, value in self.applicant.items():
            _text(value, f"applicant.{name}", _MAX_FIELD, required=True)
        object.__setattr__(self, "applicant", dict(self.applicant))

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "consent_id": self.consent_id,
            "entry_id": self.entry_id,
            "requester_org_id": self.requester_org_id,
            "holder_org_id": self.holder_org_id,
            "applicant": dict(self.applicant),
        }

    def canonical_bytes(self) -> bytes:
        return _canonical(self.to_dict())

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ApplicantDetails:
        if obj.get("v") != FORMAT_VERSION:
            raise DeserializeError("unknown details format version")
        names = {"v", "consent_id", "entry_id", "requester_org_id", "holder_org_id", "applicant"}
        if set(obj) != names:
            raise DeserializeError("the details have the wrong fields")
        try:
            return cls(**{k: v for k, v in obj.items() if k != "v"})
        except (TypeError, InvalidInputError):
            raise DeserializeError("the details have an invalid field") from None


@dataclass(frozen=True)
class OpenedDetails:
    """Opened applicant details; `signature_verified` is True only when the caller gave the
    requester's key and the signature verified against it."""

    details: ApplicantDetails
    signature_verified: bool


def _details_message(canonical: bytes) -> bytes:
    return _DETAILS_DOMAIN + b"\x00" + canonical


def seal_applicant_details(
    details: ApplicantDetails,
    holder_x25519_public: bytes,
    requester_signing_seed: bytes | None = None,
) -> bytes:
    """Seal `details` to the holder's X25519 key, signed by the requester organisation when
    its Ed25519 seed is given. Always exactly `SEALED_DETAILS_SIZE` bytes."""
    canonical = details.canonical_bytes()
    if requester_signing_seed is None:
        header = b"\x00" + bytes(_SIG)
    else:
        signer = nacl.signing.SigningKey(_key(requester_signing_seed, "requester signing key"))
        header = b"\x01" + bytes(signer.sign(_details_message(canonical)).signature)
    plain = _pad(header, canonical, DETAILS_PADDED_SIZE, "applicant details")
    box = nacl.public.SealedBox(
        nacl.public.PublicKey(_key(holder_x25519_public, "holder public key"))
    )
    return bytes(box.encrypt(plain))


def open_applicant_details(
    sealed: bytes,
    holder_x25519_private: bytes,
    *,
    requester_ed25519_public: bytes | None = None,
    expected_consent_id: str | None = None,
    expected_entry_id: str | None = None,
    expected_requester_org_id: str | None = None,
    expected_holder_org_id: str | None = None,
) -> OpenedDetails:
    """Open applicant details sealed to the holder.

    With `requester_ed25519_public`, the details must carry the requester's valid signature
    (`VerifyError` otherwise); each `expected_*` given must match what the details are bound to
    (`VerifyError` otherwise), which stops details being moved from one request to another.
    """
    plain = _open_box(sealed, holder_x25519_private, SEALED_DETAILS_SIZE, "applicant details")
    canonical = _unpad(plain, _DETAILS_HEADER, DETAILS_PADDED_SIZE, "applicant details")
    flag, signature = plain[0], plain[1 : 1 + _SIG]
    if flag not in (0, 1) or (flag == 0 and any(signature)):
        raise DeserializeError("the applicant details have an invalid signature flag")
    verified = False
    if requester_ed25519_public is not None:
        if flag != 1:
            raise VerifyError("the applicant details are not signed")
        _verify(requester_ed25519_public, _details_message(canonical), signature, "details")
        verified = True
    details = ApplicantDetails.from_dict(_load_object(canonical, "applicant details"))
    expected = {
        "consent_id": expected_consent_id,
        "entry_id": expected_entry_id,
        "requester_org_id": expected_requester_org_id,
        "holder_org_id": expected_holder_org_id,
    }
    for name, value in expected.items():
        if value is not None and getattr(details, name) != value:
            raise VerifyError(f"the applicant details were made for another {name}")
    return OpenedDetails(details=details, signature_verified=verified)
