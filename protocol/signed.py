"""Signed objects of protocol v2 (docs/protocol.md, "Signed objects").

A signed object is an ASCII JSON header, an Ed25519 signature over
`b"refcheck/v2/" + type + b"\\x00" + header`, and witnesses' cosignatures over
`b"refcheck/v2/cosign/" + type + b"\\x00" + header`. The signature covers exactly the header bytes
as sent: nothing here ever re-serialises a header to verify it, so two JSON libraries that order
or escape differently can never disagree about what was signed.

Framing: `I2OSP(len(header), 2) || header || signature (64) || count (1) || count × (witness
public key (32) || cosignature (64))`.

The `signing-key` type (a rotation of the network signing key) is defined here too, since
verifying it is only a signature check and a chain walk: `sign_signing_key` makes one (signed by
the old key, cosigned by the new), `verify_signing_key` checks one step and
`follow_signing_keys` walks a history from a trusted key to the newest.

Errors: `DeserializeError` for bytes that are not a well-formed signed object, `VerifyError` for a
well-formed one that is not what the caller trusts, `InvalidInputError` for a caller's mistake.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.encoding import MAX_SAFE_INTEGER
from protocol.errors import DeserializeError, InvalidInputError, VerifyError

__all__ = [
    "COSIGNATURE_PREFIX",
    "MAX_COSIGNATURES",
    "MAX_HEADER_SIZE",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_PREFIX",
    "SIGNATURE_SIZE",
    "SIGNING_KEY_TYPE",
    "TYPES",
    "SignedObject",
    "SigningKeyRotation",
    "cosign",
    "encode_header",
    "follow_signing_keys",
    "format_time",
    "parse",
    "parse_framed",
    "parse_time",
    "sign",
    "sign_signing_key",
    "signing_key_id",
    "verify_signing_key",
]

MAX_HEADER_SIZE = 4096
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32
MAX_COSIGNATURES = 255  # the count is one byte
SIGNATURE_PREFIX = b"refcheck/v2/"
COSIGNATURE_PREFIX = b"refcheck/v2/cosign/"

#: The types the contract names; `sign` refuses any other, so a typo cannot produce an object
#: that no verifier will ever ask for.
SIGNING_KEY_TYPE = "signing-key"
TYPES = frozenset({"oprf-key", "filter", "filter-delta", "tree-head", SIGNING_KEY_TYPE})

_REQUIRED = ("type", "network_id", "issued_at")
# A type is a short lower-case word: it is put in the signed message before a NUL, so it must not
# contain one (nor anything else that could make two (type, header) pairs give one message).
_TYPE_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


# --- time -----------------------------------------------------------------------------------


def format_time(when: dt.datetime) -> str:
    """RFC 3339 UTC to the second, `YYYY-MM-DDTHH:MM:SSZ`: one spelling per instant, so a header
    field compares as text. Refuses a naive datetime (whose zone would be a guess)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInputError("datetime must be timezone-aware")
    return when.astimezone(dt.UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> dt.datetime:
    """The aware UTC datetime of a `format_time` string; anything else is DeserializeError
    (offsets, fractions and lower-case letters are refused rather than normalised)."""
    if not isinstance(text, str) or not _TIME_RE.fullmatch(text):
        raise DeserializeError("time is not YYYY-MM-DDTHH:MM:SSZ")
    try:
        return dt.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise DeserializeError("time is not a valid date and time") from None


# --- header encoding ------------------------------------------------------------------------


def _check_value(value: Any) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise InvalidInputError("header integer outside the exactly representable JSON range")
        return
    if isinstance(value, float):
        raise InvalidInputError("header numbers must be integers")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError("header keys must be strings")
            _check_value(item)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(item)
        return
    raise InvalidInputError(f"{type(value).__name__} is not a header value")


def encode_header(fields: Mapping[str, Any]) -> bytes:
    """Compact ASCII JSON with sorted keys: the header the signer signs and sends as is.

    Refuses floats (no cross-language float text), non-ASCII (the contract's headers are ASCII,
    so no Unicode normalisation can change the signed bytes) and more than 4,096 bytes (a verifier
    bounds what it reads before checking a signature).
    """
    if not isinstance(fields, Mapping):
        raise InvalidInputError("header must be a mapping")
    _check_value(fields)
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        raise InvalidInputError("header must be ASCII")
    header = text.encode("ascii")
    if len(header) > MAX_HEADER_SIZE:
        raise InvalidInputError(f"header is longer than {MAX_HEADER_SIZE} bytes")
    return header


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers that keep different copies of a repeated key would read different headers under
    # one signature (the JSON interoperability attack); refuse the header instead.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DeserializeError("header repeats a key")
        out[key] = value
    return out


def _refuse_float(text: str) -> Any:
    raise DeserializeError("header numbers must be integers")


def _refuse_constant(text: str) -> Any:
    raise DeserializeError("header contains NaN or Infinity")


def _check_type_name(type: Any) -> str:
    if not isinstance(type, str) or not _TYPE_RE.fullmatch(type):
        raise DeserializeError("header type is not a short lower-case word")
    return type


def _decode_header(header: bytes) -> dict[str, Any]:
    """Strictly parse header bytes: ASCII, at most 4,096 bytes, one JSON object, no repeated
    keys, integers only, string `type`, `network_id` and `issued_at`."""
    if len(header) > MAX_HEADER_SIZE:
        raise DeserializeError(f"header is longer than {MAX_HEADER_SIZE} bytes")
    if not header.isascii():
        raise DeserializeError("header is not ASCII")
    try:
        fields = json.loads(
            header.decode("ascii"),
            object_pairs_hook=_refuse_duplicates,
            parse_float=_refuse_float,
            parse_constant=_refuse_constant,
        )
    except (ValueError, RecursionError):
        raise DeserializeError("header is not valid JSON") from None
    if not isinstance(fields, dict):
        raise DeserializeError("header is not a JSON object")
    for name in _REQUIRED:
        if not isinstance(fields.get(name), str):
            raise DeserializeError(f"header has no string {name!r}")
    _check_type_name(fields["type"])
    parse_time(fields["issued_at"])
    return fields


# --- signed objects -------------------------------------------------------------------------


def _message(prefix: bytes, type: str, header: bytes) -> bytes:
    return prefix + type.encode("ascii") + b"\x00" + header


def _public_key(data: bytes) -> Ed25519PublicKey:
    if not isinstance(data, bytes) or len(data) != PUBLIC_KEY_SIZE:
        raise InvalidInputError(f"Ed25519 public key must be {PUBLIC_KEY_SIZE} bytes")
    return Ed25519PublicKey.from_public_bytes(data)


def _raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
        key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class SignedObject:
    """A parsed or freshly signed object. `fields` is always the decoding of `header` and `type`
    its `type` (checked at construction), so code reading `fields` reads what was signed."""

    type: str
    header: bytes
    fields: Mapping[str, Any]
    signature: bytes
    cosignatures: tuple[tuple[bytes, bytes], ...] = ()

    def __post_init__(self) -> None:
        decoded = _decode_header(self.header)
        if decoded != dict(self.fields) or decoded["type"] != self.type:
            raise InvalidInputError("fields and type must be those of the header")
        if len(self.signature) != SIGNATURE_SIZE:
            raise InvalidInputError(f"signature must be {SIGNATURE_SIZE} bytes")
        cosignatures = tuple((bytes(k), bytes(s)) for k, s in self.cosignatures)
        if len(cosignatures) > MAX_COSIGNATURES:
            raise InvalidInputError(f"more than {MAX_COSIGNATURES} cosignatures")
        for key, sig in cosignatures:
            if len(key) != PUBLIC_KEY_SIZE or len(sig) != SIGNATURE_SIZE:
                raise InvalidInputError("cosignature has the wrong size")
        if len({key for key, _ in cosignatures}) != len(cosignatures):
            raise InvalidInputError("a witness cosigns twice")
        object.__setattr__(self, "fields", MappingProxyType(decoded))
        object.__setattr__(self, "cosignatures", cosignatures)

    def __hash__(self) -> int:
        # `fields` is a read-only mapping, which is unhashable; the bytes determine it.
        return hash((self.header, self.signature, self.cosignatures))

    def framed(self) -> bytes:
        """The wire form: length-prefixed header, signature, cosignature count and cosignatures."""
        parts = [
            len(self.header).to_bytes(2, "big"),
            self.header,
            self.signature,
            bytes([len(self.cosignatures)]),
        ]
        for key, sig in self.cosignatures:
            parts += [key, sig]
        return b"".join(parts)

    def verify(
        self,
        public_key: bytes,
        *,
        network_id: str,
        type: str,
        witnesses: Sequence[bytes] = (),
    ) -> None:
        """Raise VerifyError unless this is a `type` object of `network_id`, signed by
        `public_key` and cosigned by every key in `witnesses`.

        The type check stops a signed `oprf-key` being replayed as a `filter` (the type is also
        in the signed message); the network check stops another network's object, signed by a
        key the SDK also pins, from being accepted here. Cosignatures by keys not in
        `witnesses` are ignored: they neither help nor hurt.
        """
        for key in (public_key, *witnesses):
            _public_key(key)
        if self.type != type:
            raise VerifyError("signed object has the wrong type")
        if self.fields["network_id"] != network_id:
            raise VerifyError("signed object is for another network")
        if not _verifies(public_key, self.signature, _message(SIGNATURE_PREFIX, type, self.header)):
            raise VerifyError("signature does not verify")
        cosigned = dict(self.cosignatures)
        cosign_message = _message(COSIGNATURE_PREFIX, type, self.header)
        for witness in witnesses:
            sig = cosigned.get(witness)
            # A missing cosignature is a split view no witness has seen; an invalid one a forgery.
            if sig is None:
                raise VerifyError("a required witness has not cosigned")
            if not _verifies(witness, sig, cosign_message):
                raise VerifyError("a witness's cosignature does not verify")


def sign(private_key: Ed25519PrivateKey, fields: Mapping[str, Any]) -> SignedObject:
    """Encode `fields` as a header and sign it. `fields` must hold string `type` (one of
    `TYPES`), `network_id` and `issued_at` (as `format_time` writes it)."""
    for name in _REQUIRED:
        if not isinstance(fields.get(name), str):
            raise InvalidInputError(f"fields need a string {name!r}")
    type = fields["type"]
    if type not in TYPES:
        raise InvalidInputError("unknown signed object type")
    try:
        parse_time(fields["issued_at"])
    except DeserializeError:
        raise InvalidInputError("issued_at is not YYYY-MM-DDTHH:MM:SSZ") from None
    header = encode_header(fields)
    signature = private_key.sign(_message(SIGNATURE_PREFIX, type, header))
    return SignedObject(type, header, _decode_header(header), signature)


def cosign(witness_key: Ed25519PrivateKey, obj: SignedObject) -> SignedObject:
    """`obj` with `witness_key`'s cosignature appended. The witness must check what the header
    says (the log, the filter size) before calling this; a cosignature vouches for that."""
    signature = witness_key.sign(_message(COSIGNATURE_PREFIX, obj.type, obj.header))
    cosignatures = (*obj.cosignatures, (_raw_public_key(witness_key), signature))
    return SignedObject(obj.type, obj.header, obj.fields, obj.signature, cosignatures)


def _take(data: bytes, offset: int, size: int) -> bytes:
    end = offset + size
    if end > len(data):
        raise DeserializeError("signed object is truncated")
    return data[offset:end]


def parse_framed(data: bytes, offset: int = 0) -> tuple[SignedObject, int]:
    """Parse one framed signed object starting at `offset`; return it and the offset after it.
    Checks structure only: the caller verifies with `SignedObject.verify`."""
    if offset < 0:
        raise InvalidInputError("offset must not be negative")
    size = int.from_bytes(_take(data, offset, 2), "big")
    if size > MAX_HEADER_SIZE:
        # Refused before reading on: the length must not let a sender make us buffer much.
        raise DeserializeError(f"header is longer than {MAX_HEADER_SIZE} bytes")
    offset += 2
    header = _take(data, offset, size)
    offset += size
    signature = _take(data, offset, SIGNATURE_SIZE)
    offset += SIGNATURE_SIZE
    count = _take(data, offset, 1)[0]
    offset += 1
    cosignatures = []
    for _ in range(count):
        key = _take(data, offset, PUBLIC_KEY_SIZE)
        sig = _take(data, offset + PUBLIC_KEY_SIZE, SIGNATURE_SIZE)
        offset += PUBLIC_KEY_SIZE + SIGNATURE_SIZE
        cosignatures.append((key, sig))
    if len({key for key, _ in cosignatures}) != count:
        raise DeserializeError("a witness cosigns twice")
    fields = _decode_header(header)
    obj = SignedObject(fields["type"], header, fields, signature, tuple(cosignatures))
    return obj, offset


def parse(data: bytes) -> SignedObject:
    """Parse exactly one framed signed object (as carried in JSON hex); trailing bytes are
    refused, so one object has one encoding."""
    obj, end = parse_framed(data)
    if end != len(data):
        raise DeserializeError("trailing bytes after the signed object")
    return obj


# --- rotations of the network signing key (`signing-key`) -------------------------------------


def signing_key_id(public_key: bytes) -> str:
    """The `key_id` of a network signing key: the first 16 hex digits of the SHA-256 of its raw
    32 bytes (what `GET /v1/network/keys` shows as `signing_key.key_id`)."""
    _public_key(public_key)
    return hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKeyRotation:
    """One verified `signing-key` object: the network's signing key `prev_public_key` was
    replaced by `public_key`, the `key_seq`-th key of the network (the first key is 1)."""

    network_id: str
    key_seq: int
    public_key: bytes
    prev_public_key: bytes
    signed: SignedObject

    @property
    def key_id(self) -> str:
        return signing_key_id(self.public_key)

    @property
    def prev_key_id(self) -> str:
        return signing_key_id(self.prev_public_key)

    @property
    def issued_at(self) -> str:
        return str(self.signed.fields["issued_at"])


def sign_signing_key(
    old: Ed25519PrivateKey,
    new: Ed25519PrivateKey,
    *,
    network_id: str,
    key_seq: int,
    issued_at: str,
) -> SignedObject:
    """The `signing-key` object of one rotation: the header `{type, network_id, issued_at,
    key_seq, key_id, public_key, prev_key_id, prev_public_key}`, signed by the old key (the one
    a client trusts already) and cosigned by the new (proof that its holder made the rotation).
    `key_seq` is the new key's number: 2 for the network's first rotation."""
    if isinstance(key_seq, bool) or not isinstance(key_seq, int) or key_seq < 2:
        raise InvalidInputError("a rotated signing key's key_seq is an integer of at least 2")
    old_public, new_public = _raw_public_key(old), _raw_public_key(new)
    if old_public == new_public:
        raise InvalidInputError("a rotation needs a new key")
    fields = {
        "type": SIGNING_KEY_TYPE,
        "network_id": network_id,
        "issued_at": issued_at,
        "key_seq": key_seq,
        "key_id": signing_key_id(new_public),
        "public_key": new_public.hex(),
        "prev_key_id": signing_key_id(old_public),
        "prev_public_key": old_public.hex(),
    }
    return cosign(new, sign(old, fields))


def _key_field(fields: Mapping[str, Any], name: str) -> bytes:
    value = fields.get(name)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != PUBLIC_KEY_SIZE or raw.hex() != value:
        raise DeserializeError(f"{name} is not {PUBLIC_KEY_SIZE} bytes of lower-case hex")
    return raw


def _rotation_fields(obj: SignedObject) -> tuple[int, bytes, bytes]:
    """`(key_seq, public_key, prev_public_key)` of a `signing-key` header, checked for form."""
    if obj.type != SIGNING_KEY_TYPE:
        raise VerifyError("signed object has the wrong type")
    fields = obj.fields
    seq = fields.get("key_seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 2:
        raise DeserializeError("key_seq of a rotated signing key is an integer of at least 2")
    public, prev = _key_field(fields, "public_key"), _key_field(fields, "prev_public_key")
    if public == prev:
        raise DeserializeError("a signing key rotation names the same key twice")
    if fields.get("key_id") != signing_key_id(public) or fields.get(
        "prev_key_id"
    ) != signing_key_id(prev):
        raise DeserializeError("key_id or prev_key_id is not that of its key")
    return seq, public, prev


def verify_signing_key(
    obj: SignedObject | bytes, *, prev_public_key: bytes, network_id: str
) -> SigningKeyRotation:
    """Verify one `signing-key` object (framed bytes or parsed) as a rotation away from
    `prev_public_key`, a key the caller trusts: of this network, naming that key as the one
    replaced, signed by it and cosigned by the key it names. `VerifyError` otherwise
    (`DeserializeError` for a malformed one)."""
    signed = parse(obj) if isinstance(obj, bytes) else obj
    _public_key(prev_public_key)
    seq, public, prev = _rotation_fields(signed)
    if prev != prev_public_key:
        raise VerifyError("the rotation replaces another key than the one trusted")
    signed.verify(prev_public_key, network_id=network_id, type=SIGNING_KEY_TYPE, witnesses=[public])
    return SigningKeyRotation(network_id, seq, public, prev, signed)


def follow_signing_keys(
    history: Sequence[SignedObject | bytes], *, trusted: bytes, network_id: str
) -> list[SigningKeyRotation]:
    """Walk a signing key history (oldest first, as `GET /v1/network/keys` serves it) from the
    `trusted` key to its newest key: the rotations after `trusted`, each verified against the
    key before it (the first against `trusted`), each `key_seq` one more than the one before,
    no key twice. Rotations before `trusted` are only parsed. `[]` when no rotation replaces
    `trusted` (it is the newest the history knows, or the history does not name it: the
    caller compares where the walk ended with the key it is offered).

    `VerifyError` when a step does not verify or the history breaks after `trusted` (a gap, a
    key rotated twice, a key coming back); `DeserializeError` when an object is malformed."""
    _public_key(trusted)
    objects = [parse(h) if isinstance(h, bytes) else h for h in history]
    starts = [i for i, o in enumerate(objects) if _rotation_fields(o)[2] == trusted]
    if not starts:
        return []
    if len(starts) > 1:
        raise VerifyError("the history rotates the trusted key more than once")
    steps: list[SigningKeyRotation] = []
    current, seen = trusted, {trusted}
    for obj in objects[starts[0] :]:
        step = verify_signing_key(obj, prev_public_key=current, network_id=network_id)
        if steps and step.key_seq != steps[-1].key_seq + 1:
            raise VerifyError("the history's key_seq does not go up by one")
        if step.public_key in seen:
            raise VerifyError("the history returns to a key it rotated away from")
        steps.append(step)
        current = step.public_key
        seen.add(current)
    return steps
