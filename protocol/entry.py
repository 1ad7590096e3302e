"""Tags, prefixes, handles, pads and fillers of protocol v2 (docs/protocol.md, "Pseudonyms,
tags, handles" and "The registry filter").

Everything here is a function of a pseudonym `P = skS·HashToGroup(value)` or of the key itself,
never of an identifier directly: without `skS` (or a consented check's evaluation) none of these
values can be computed, which is what keeps a stolen database from confirming a guess.

- `tag(P)`: 16 bytes naming a pseudonym's entries at the entries call;
- `prefix(P)`: the tag's first 48 bits, the registry filter's values;
- `handle_key(P)` and `seal_handle`/`open_handle`: the entry's details, readable only with `P`;
- `pad_input`/`filler_input` and `evaluate_inputs`/`prove_evaluations`/`verify_evaluations`:
  the server's verifiable pads and fillers (skS·HashToGroup of public inputs, with a DLEQ proof).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.codes import KIND_CODES, PADDING_KIND
from protocol.encoding import canonical_json, i2osp, lp
from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.hazmat import hash_to_curve
from protocol.hazmat.ristretto255 import (
    ELEMENT_SIZE,
    Rng,
    deserialize_element,
    deserialize_scalar,
    is_identity,
    scalar_mult,
)
from protocol.identity.keys import Strength
from protocol.oprf import MAX_INPUT_SIZE, MODE_VOPRF, VOPRFClient, VOPRFServer, context_string

__all__ = [
    "FILLER_PREFIX",
    "HANDLE_NONCE_SIZE",
    "HANDLE_SIZE",
    "PAD_PREFIX",
    "PREFIX_SIZE",
    "SEALED_HANDLE_SIZE",
    "TAG_SIZE",
    "Handle",
    "evaluate_inputs",
    "filler_input",
    "handle_key",
    "hash_to_group",
    "lp",
    "open_handle",
    "pad_input",
    "prefix",
    "prove_evaluations",
    "seal_handle",
    "tag",
    "verify_evaluations",
]

TAG_SIZE = 16
PREFIX_SIZE = 6
HANDLE_SIZE = 256
HANDLE_NONCE_SIZE = nacl.secret.SecretBox.NONCE_SIZE
SEALED_HANDLE_SIZE = HANDLE_NONCE_SIZE + nacl.secret.SecretBox.MACBYTES + HANDLE_SIZE
PAD_PREFIX = b"refcheck/v2/pad"
FILLER_PREFIX = b"refcheck/v2/fill"

_TAG_PREFIX = b"refcheck/v2/tag"
_HANDLE_INFO = b"refcheck/v2/handle"
_HANDLE_FIELDS = ("entry_id", "case_id", "holder_org_id", "holder_org_name", "kind", "strength")
_STRENGTHS = frozenset(s.value for s in Strength)
_GROUP_DST = b"HashToGroup-" + context_string(MODE_VOPRF)


def _pseudonym(p: bytes) -> bytes:
    """`P` checked: 32 bytes, a canonical non-identity element. An identity `P` would give every
    holder of it the same tag and handle key (`skS` plays no part), so it is refused."""
    if not isinstance(p, bytes) or len(p) != ELEMENT_SIZE:
        raise InvalidInputError(f"pseudonym must be {ELEMENT_SIZE} bytes")
    try:
        return deserialize_element(p)
    except DeserializeError:
        raise InvalidInputError("pseudonym is not a valid non-identity element") from None


def tag(p: bytes) -> bytes:
    """`SHA-256(b"refcheck/v2/tag" || P)[:16]`: what a client names at the entries call. One-way,
    so sending it does not give the server `P` (which opens the handle)."""
    return hashlib.sha256(_TAG_PREFIX + _pseudonym(p)).digest()[:TAG_SIZE]


def prefix(p: bytes) -> int:
    """The tag's first 6 bytes as a big-endian integer: the value in the registry filter."""
    return int.from_bytes(tag(p)[:PREFIX_SIZE], "big")


def handle_key(p: bytes) -> bytes:
    """`HKDF-SHA256(ikm=P, salt=32 zero bytes, info=b"refcheck/v2/handle")`, 32 bytes: only a
    holder of `P` (the server in memory, or a client whose check evaluated it) can open a handle,
    and the tag, which the server sees, does not give the key."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(32), info=_HANDLE_INFO)
    return hkdf.derive(_pseudonym(p))


# --- handles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handle:
    """What an entry's sealed handle says. `kind` is a code name of `protocol.codes` or
    `padding`; `strength` is `strong`, `exact` or `variant` (always `variant` for a pad)."""

    entry_id: str
    case_id: str
    holder_org_id: str
    holder_org_name: str
    kind: str
    strength: str

    def __post_init__(self) -> None:
        for name in _HANDLE_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise InvalidInputError(f"handle {name} must be a string")
        if self.kind not in KIND_CODES and self.kind != PADDING_KIND:
            raise InvalidInputError("handle kind is not a known kind")
        if self.strength not in _STRENGTHS:
            raise InvalidInputError("handle strength is not strong, exact or variant")
        if self.kind == PADDING_KIND and self.strength != Strength.VARIANT:
            raise InvalidInputError("a padding handle has strength variant")
        # A Strength member is a str; store the plain value so equality and JSON are uniform.
        object.__setattr__(self, "strength", str(Strength(self.strength).value))

    def to_plaintext(self) -> bytes:
        """RFC 8785 JSON of the six fields padded with spaces to exactly 256 bytes: every sealed
        handle has one length, so the ciphertext does not tell a pad or a long org name apart."""
        text = canonical_json(asdict(self))
        if len(text) > HANDLE_SIZE:
            raise InvalidInputError(f"handle JSON is longer than {HANDLE_SIZE} bytes")
        return text + b" " * (HANDLE_SIZE - len(text))

    @classmethod
    def from_plaintext(cls, data: bytes) -> Handle:
        """Strict inverse of `to_plaintext`: exactly 256 bytes, canonical JSON of exactly the six
        string fields, then spaces. Anything else is DeserializeError."""
        if len(data) != HANDLE_SIZE:
            raise DeserializeError(f"handle plaintext must be {HANDLE_SIZE} bytes")
        try:
            fields = json.loads(data.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise DeserializeError("handle plaintext is not JSON") from None
        if not isinstance(fields, dict) or set(fields) != set(_HANDLE_FIELDS):
            raise DeserializeError("handle must have exactly its six fields")
        try:
            handle = cls(**fields)
        except InvalidInputError as e:
            raise DeserializeError(str(e)) from None
        # One handle, one plaintext: refuse other spellings (key order, escapes, whitespace).
        if handle.to_plaintext() != data:
            raise DeserializeError("handle plaintext is not in canonical form")
        return handle


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DeserializeError("handle repeats a key")
        out[key] = value
    return out


def seal_handle(p: bytes, handle: Handle, *, rng: Rng | None = None) -> bytes:
    """`nonce || SecretBox(handle_key(P))(plaintext)`, 296 bytes. The nonce is random (`rng`,
    default `os.urandom`): handles are re-sealed at every rotation under a new key, and a random
    24-byte nonce never repeats in practice."""
    nonce = (os.urandom if rng is None else rng)(HANDLE_NONCE_SIZE)
    if len(nonce) != HANDLE_NONCE_SIZE:
        raise InvalidInputError("rng returned the wrong number of bytes")
    box = nacl.secret.SecretBox(handle_key(p))
    return bytes(box.encrypt(handle.to_plaintext(), nonce))


def open_handle(p: bytes, sealed: bytes) -> Handle | None:
    """The handle sealed under `P`'s key, or None when it does not open (another `P`'s entry
    under the same tag, or a corrupted one). A handle that opens but does not parse is
    DeserializeError: only the holder of `P` could have sealed it, so that is a server bug."""
    key = handle_key(p)
    if len(sealed) != SEALED_HANDLE_SIZE:
        return None
    try:
        plaintext = nacl.secret.SecretBox(key).decrypt(sealed)
    except nacl.exceptions.CryptoError:
        return None
    return Handle.from_plaintext(plaintext)


# --- pads, fillers and their proofs ---------------------------------------------------------


def hash_to_group(value: bytes) -> bytes:
    """RFC 9497 HashToGroup with the VOPRF (mode 1) context string: `skS·hash_to_group(v)` is
    exactly the unblinded VOPRF evaluation of `v`, so a registered element and a checked one
    meet. Refuses inputs the OPRF refuses (over 65,535 bytes, hashing to the identity)."""
    if not isinstance(value, bytes) or len(value) > MAX_INPUT_SIZE:
        raise InvalidInputError(f"input must be bytes of at most {MAX_INPUT_SIZE}")
    element = hash_to_curve.hash_to_group(value, _GROUP_DST)
    if is_identity(element):
        raise InvalidInputError("input hashes to the identity element")
    return element


def pad_input(case_id: str, i: int) -> bytes:
    """`b"refcheck/v2/pad" || lp(case_id) || I2OSP(i, 2)`: the public input of a case's pad in
    slot `i`. Derived, not random, so the focal point can check (with the DLEQ proof) that a pad
    is not a planted copy of someone's real value."""
    return PAD_PREFIX + lp(case_id) + i2osp(i, 2)


def filler_input(k: int) -> bytes:
    """`b"refcheck/v2/fill" || I2OSP(k, 4)` for `k = 1, 2, ...`: a filler's public input, so a
    witness can check every filler is one and not a chosen value."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError("filler numbers start at 1")
    return FILLER_PREFIX + i2osp(k, 4)


def _secret_key(secret_key: bytes) -> bytes:
    if len(secret_key) != 32:
        raise InvalidInputError("secret key must be 32 bytes")
    try:
        sk = deserialize_scalar(secret_key)
    except DeserializeError:
        raise InvalidInputError("secret key is not a canonical scalar") from None
    if sk == bytes(32):
        raise InvalidInputError("secret key must not be zero")
    return sk


def evaluate_inputs(secret_key: bytes, inputs: Sequence[bytes]) -> list[bytes]:
    """`skS·HashToGroup(input)` for each input: pads and fillers as the server computes them."""
    sk = _secret_key(secret_key)
    return [scalar_mult(sk, hash_to_group(x)) for x in inputs]


def prove_evaluations(
    secret_key: bytes,
    inputs: Sequence[bytes],
    points: Sequence[bytes],
    *,
    rng: Rng | None = None,
) -> bytes:
    """One RFC 9497 batch DLEQ proof (VOPRF context) that `points[i] = skS·HashToGroup(inputs[i])`
    for the key's public key. `points` must be `evaluate_inputs(secret_key, inputs)`; a proof of
    anything else does not verify."""
    server = VOPRFServer(_secret_key(secret_key))
    elements = [hash_to_group(x) for x in inputs]
    return server.generate_proof(elements, points, rng=rng)


def verify_evaluations(
    public_key: bytes, inputs: Sequence[bytes], points: Sequence[bytes], proof: bytes
) -> None:
    """Raise VerifyError unless `proof` shows `points[i] = skS·HashToGroup(inputs[i])` for the
    `skS` of `public_key`. This is what stops a server planting a chosen value as a pad or a
    filler (to catch a chosen person's checks): it cannot prove one.

    A malformed point or proof is a false statement too, so it is VerifyError as well; a malformed
    `public_key` (the caller's pinned key) is InvalidInputError.
    """
    try:
        client = VOPRFClient(public_key)
    except DeserializeError:
        raise InvalidInputError("public key is not a valid element") from None
    if len(inputs) != len(points):
        raise VerifyError("inputs and points differ in number")
    elements = [hash_to_group(x) for x in inputs]
    try:
        client.verify_proof(elements, points, proof)
    except (DeserializeError, InvalidInputError):
        raise VerifyError("evaluation proof does not verify") from None
