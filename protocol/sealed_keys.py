"""The `sealed_keys` of a v2 registration (docs/protocol.md, "Registration", step 2).

Plaintext: `SHA-256(RFC 8785 JSON of the case metadata) || n (1 byte) || keys_per_check slots of
(element 32 || kind code 1 || strength code 1)`, the first `n` slots real, the rest all zero;
sealed with `nacl.public.SealedBox` to the server's registration key.

Why sealed and fixed-size: the elements `HashToGroup(value)` are unkeyed functions of
identifiers, so they must never be readable in transit, in a proxy's log or in the idempotency
record; and the body's length must not tell how many keys the person has. The metadata hash binds
the keys to the case they were sealed for, so a captured `sealed_keys` cannot be replayed under
other case details.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.public

from protocol.codes import KIND_CODES, KINDS_BY_CODE, STRENGTH_CODES, STRENGTHS_BY_CODE
from protocol.encoding import canonical_json
from protocol.errors import DeserializeError, InvalidInputError
from protocol.hazmat.ristretto255 import ELEMENT_SIZE, deserialize_element
from protocol.identity.keys import Strength

__all__ = [
    "MAX_KEYS_PER_CHECK",
    "METADATA_HASH_SIZE",
    "SLOT_SIZE",
    "RegisteredKey",
    "decode",
    "encode",
    "metadata_sha256",
    "open_sealed",
    "plaintext_size",
    "seal",
]

METADATA_HASH_SIZE = 32
SLOT_SIZE = ELEMENT_SIZE + 2
MAX_KEYS_PER_CHECK = 255  # n is one byte
_EMPTY_SLOT = bytes(SLOT_SIZE)


def metadata_sha256(metadata: Mapping[str, Any]) -> bytes:
    """SHA-256 of the RFC 8785 JSON of the case metadata (the `POST /v1/cases` body without
    `sealed_keys`). Refuses a mapping that still holds `sealed_keys`: hashing the whole body on
    one side and the metadata on the other would make every registration fail."""
    if not isinstance(metadata, Mapping):
        raise InvalidInputError("metadata must be a mapping")
    if "sealed_keys" in metadata:
        raise InvalidInputError("metadata must not include sealed_keys")
    return hashlib.sha256(canonical_json(metadata)).digest()


@dataclass(frozen=True)
class RegisteredKey:
    """One real key of a registration: `element = HashToGroup(value)` (32 bytes, VOPRF context)
    with its kind and strength."""

    element: bytes
    kind: str
    strength: Strength

    def __post_init__(self) -> None:
        if not isinstance(self.element, bytes) or len(self.element) != ELEMENT_SIZE:
            raise InvalidInputError(f"element must be {ELEMENT_SIZE} bytes")
        if self.kind not in KIND_CODES:
            raise InvalidInputError("kind has no code")
        try:
            object.__setattr__(self, "strength", Strength(self.strength))
        except ValueError:
            raise InvalidInputError("strength has no code") from None


def _check_keys_per_check(keys_per_check: int) -> None:
    if (
        isinstance(keys_per_check, bool)
        or not isinstance(keys_per_check, int)
        or not 1 <= keys_per_check <= MAX_KEYS_PER_CHECK
    ):
        raise InvalidInputError(f"keys_per_check must be in 1 .. {MAX_KEYS_PER_CHECK}")


def plaintext_size(keys_per_check: int) -> int:
    """The plaintext's length: the same for every registration under one policy."""
    _check_keys_per_check(keys_per_check)
    return METADATA_HASH_SIZE + 1 + keys_per_check * SLOT_SIZE


def encode(metadata_hash: bytes, keys: Sequence[RegisteredKey], keys_per_check: int) -> bytes:
    """The plaintext for `keys` (at least one, at most `keys_per_check`, no repeated element,
    each a valid non-identity element), unused slots zero."""
    _check_keys_per_check(keys_per_check)
    if not isinstance(metadata_hash, bytes) or len(metadata_hash) != METADATA_HASH_SIZE:
        raise InvalidInputError(f"metadata hash must be {METADATA_HASH_SIZE} bytes")
    if not keys:
        raise InvalidInputError("a registration needs at least one key")
    if len(keys) > keys_per_check:
        raise InvalidInputError("more keys than keys_per_check")
    seen: set[bytes] = set()
    slots = []
    for i, key in enumerate(keys):
        try:
            deserialize_element(key.element)
        except DeserializeError:
            raise InvalidInputError(
                f"slot {i}: element is not a valid non-identity element"
            ) from None
        if key.element in seen:
            raise InvalidInputError(f"slot {i}: element repeats an earlier slot")
        seen.add(key.element)
        slots.append(key.element + bytes([KIND_CODES[key.kind], STRENGTH_CODES[key.strength]]))
    slots += [_EMPTY_SLOT] * (keys_per_check - len(keys))
    return metadata_hash + bytes([len(keys)]) + b"".join(slots)


def decode(plaintext: bytes, keys_per_check: int) -> tuple[bytes, list[RegisteredKey]]:
    """`(metadata_hash, keys)` of a plaintext, strictly: exact length, 1 <= n <= keys_per_check,
    known codes, valid non-identity elements without repeats, unused slots all zero.

    Errors are DeserializeError with `index` set to the slot where there is one; messages never
    carry an element (it is a function of an identifier and must not reach a log).
    """
    size = plaintext_size(keys_per_check)
    if len(plaintext) != size:
        raise DeserializeError("sealed keys have the wrong length")
    metadata_hash = plaintext[:METADATA_HASH_SIZE]
    n = plaintext[METADATA_HASH_SIZE]
    if not 1 <= n <= keys_per_check:
        raise DeserializeError("sealed keys count is outside 1 .. keys_per_check")
    base = METADATA_HASH_SIZE + 1
    keys: list[RegisteredKey] = []
    seen: set[bytes] = set()
    for i in range(keys_per_check):
        slot = plaintext[base + i * SLOT_SIZE : base + (i + 1) * SLOT_SIZE]
        if i >= n:
            # Bytes in an unused slot would be a covert channel (or an extra key a buggy server
            # might read); one registration must have one encoding.
            if not hmac.compare_digest(slot, _EMPTY_SLOT):
                raise DeserializeError(f"slot {i}: unused slot is not zero", index=i)
            continue
        element, kind_code, strength_code = slot[:ELEMENT_SIZE], slot[-2], slot[-1]
        try:
            deserialize_element(element)
        except DeserializeError:
            # An invalid or identity element would give a P independent of the key, or no P.
            raise DeserializeError(
                f"slot {i}: element is not a valid non-identity element", index=i
            ) from None
        if kind_code not in KINDS_BY_CODE:
            raise DeserializeError(f"slot {i}: unknown kind code", index=i)
        if strength_code not in STRENGTHS_BY_CODE:
            raise DeserializeError(f"slot {i}: unknown strength code", index=i)
        if element in seen:
            # A repeat would make two entries of one P and let a case carry fewer real keys
            # than its entry count suggests.
            raise DeserializeError(f"slot {i}: element repeats an earlier slot", index=i)
        seen.add(element)
        keys.append(
            RegisteredKey(element, KINDS_BY_CODE[kind_code], STRENGTHS_BY_CODE[strength_code])
        )
    return metadata_hash, keys


def _key(data: bytes, cls: type[nacl.public.PublicKey] | type[nacl.public.PrivateKey]) -> Any:
    if not isinstance(data, bytes) or len(data) != 32:
        raise InvalidInputError("X25519 key must be 32 bytes")
    return cls(data)


def seal(registration_public_key: bytes, plaintext: bytes) -> bytes:
    """`nacl.public.SealedBox` of `plaintext` to the registration key (an ephemeral sender key
    each time, so two registrations of one person do not share ciphertext)."""
    return bytes(
        nacl.public.SealedBox(_key(registration_public_key, nacl.public.PublicKey)).encrypt(
            plaintext
        )
    )


def open_sealed(registration_private_key: bytes, sealed: bytes) -> bytes:
    """The plaintext of a sealed box to the registration key; DeserializeError when it does not
    open (sealed to another key, or altered)."""
    box = nacl.public.SealedBox(_key(registration_private_key, nacl.public.PrivateKey))
    try:
        return bytes(box.decrypt(sealed))
    except nacl.exceptions.CryptoError:
        raise DeserializeError("sealed keys do not open with the registration key") from None
