"""ristretto255 group and scalar operations (RFC 9496) on libsodium, through `rbcl`.

This is the dangerous core: functions take and return raw 32-byte encodings, and most of them trust
that their arguments came from this module (see each docstring). The safe API is `protocol.oprf`.
We never do field arithmetic ourselves: every group and scalar operation is libsodium's, which is
constant time and has been reviewed far more than anything we could write.

Elements are their canonical 32-byte encodings. ristretto255 encodings are canonical, so two
elements are equal exactly when their bytes are equal, and the identity element encodes as 32 zero
bytes. Scalars are 32-byte little-endian integers below the group order `GROUP_ORDER`.

Performance note: libsodium decodes its point arguments on every call (a decode costs roughly a
tenth of a scalar multiplication) and `crypto_scalarmult_ristretto255` itself refuses a
non-canonical or invalid encoding and an identity result. `scalar_mult` relies on that instead of
decoding the point a second time, so hot paths need not call `deserialize_element` first.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Sequence

import rbcl

from protocol.errors import DeserializeError, InvalidInputError

__all__ = [
    "ELEMENT_SIZE",
    "GENERATOR",
    "GROUP_ORDER",
    "IDENTITY",
    "SCALAR_SIZE",
    "Rng",
    "add",
    "deserialize_element",
    "deserialize_scalar",
    "is_identity",
    "random_scalar",
    "scalar_add",
    "scalar_batch_invert",
    "scalar_invert",
    "scalar_mul",
    "scalar_mult",
    "scalar_mult_base",
    "scalar_negate",
    "scalar_sub",
    "sub",
]

Rng = Callable[[int], bytes]
"""Source of randomness: called with a byte count, returns that many uniformly random bytes."""

ELEMENT_SIZE = 32
SCALAR_SIZE = 32
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
"""The prime order L of ristretto255, for documentation and tests; arithmetic uses libsodium."""

IDENTITY = bytes(ELEMENT_SIZE)
_ZERO_SCALAR = bytes(SCALAR_SIZE)
_ONE_SCALAR = (1).to_bytes(SCALAR_SIZE, "little")
_WIDE_ZERO_PAD = bytes(SCALAR_SIZE)
# Bytes asked of the rng per scalar: 512 bits reduced mod a 253-bit order leaves a bias below
# 2^-250, the "random number reduction" of RFC 9497 section 4.7 / RFC 9380 section 5.
_RANDOM_SCALAR_BYTES = 64
_RANDOM_SCALAR_ATTEMPTS = 8


def is_identity(element: bytes) -> bool:
    """True for the identity encoding (32 zero bytes); compared in constant time because the
    element may be secret (an unblinded pseudonym)."""
    return hmac.compare_digest(element, IDENTITY)


def _check_element_bytes(data: bytes) -> None:
    if len(data) != ELEMENT_SIZE:
        raise DeserializeError("element has the wrong length")
    # The libsodium bundled with rbcl ignores bit 255 when decoding, so every element has a second
    # encoding with that bit set. RFC 9496 requires refusing it: two encodings of one element
    # defeat any check that compares encodings (replay and duplicate detection, pinned keys).
    if data[31] & 0x80:
        raise DeserializeError("element encoding is not canonical")


def deserialize_element(data: bytes) -> bytes:
    """Check that `data` is the canonical encoding of a non-identity ristretto255 element and
    return it (RFC 9497 DeserializeElement).

    Stops invalid-point and small-subgroup style inputs: libsodium's decoder refuses
    non-canonical field elements, negative `s`, and values that decode to no point; we refuse a
    set bit 255 and the identity ourselves because libsodium accepts both, and an identity blinded
    or evaluated element would make the server's answer independent of its key.
    """
    _check_element_bytes(data)
    if not rbcl.crypto_core_ristretto255_is_valid_point(data):
        raise DeserializeError("bytes do not encode a ristretto255 element")
    if is_identity(data):
        raise DeserializeError("the identity element is not accepted")
    return bytes(data)


def deserialize_scalar(data: bytes) -> bytes:
    """Check that `data` is a canonical scalar (little-endian, below the group order) and return
    it (RFC 9497 DeserializeScalar). Zero is a valid scalar here; callers that need a non-zero
    one (keys, blinds) check that themselves.

    Refusing non-canonical scalars stops proof malleability: `s` and `s + L` would otherwise both
    verify, so a proof would not have a single encoding.
    """
    if len(data) != SCALAR_SIZE:
        raise DeserializeError("scalar has the wrong length")
    reduced = rbcl.crypto_core_ristretto255_scalar_reduce(bytes(data) + _WIDE_ZERO_PAD)
    # Reduce-and-compare runs in constant time, unlike a Python int comparison on a secret key.
    if not hmac.compare_digest(reduced, data):
        raise DeserializeError("scalar is not below the group order")
    return bytes(data)


def _check_scalar_bits(k: bytes) -> None:
    # libsodium silently clears bit 255 of the scalar; refuse such a scalar instead of computing
    # with a different value than the caller meant.
    if len(k) != SCALAR_SIZE:
        raise InvalidInputError("scalar has the wrong length")
    if k[31] & 0x80:
        raise InvalidInputError("scalar is not reduced")


def _is_zero_mod_order(k: bytes) -> bool:
    return hmac.compare_digest(
        rbcl.crypto_core_ristretto255_scalar_reduce(k + _WIDE_ZERO_PAD), _ZERO_SCALAR
    )


def scalar_mult(k: bytes, element: bytes) -> bytes:
    """Return `k·element`, validating `element` on the way.

    `k` is a 32-byte little-endian integer below 2^255, taken modulo the group order. Raises
    `DeserializeError` when `element` is not a canonical non-identity element encoding (libsodium
    checks this while decoding, we check bit 255, so no separate `deserialize_element` is needed),
    and
    `InvalidInputError` when `k` is zero modulo the order.
    """
    _check_scalar_bits(k)
    _check_element_bytes(element)
    try:
        return bytes(rbcl.crypto_scalarmult_ristretto255(k, element))
    except RuntimeError:
        # libsodium returns -1 for an undecodable point or an identity result. In a prime-order
        # group the result is the identity only if k is 0 mod L or the element is the identity.
        if _is_zero_mod_order(k):
            raise InvalidInputError("scalar is zero") from None
        raise DeserializeError("bytes do not encode a non-identity element") from None


def scalar_mult_base(k: bytes) -> bytes:
    """Return `k·G` for the generator G; `k` as in `scalar_mult`. Zero raises InvalidInputError."""
    _check_scalar_bits(k)
    try:
        return bytes(rbcl.crypto_scalarmult_ristretto255_base(k))
    except RuntimeError:
        raise InvalidInputError("scalar is zero") from None


GENERATOR = scalar_mult_base(_ONE_SCALAR)


def add(p: bytes, q: bytes) -> bytes:
    """Return `p + q`. Both must be valid element encodings (outputs of this module or of
    `deserialize_element`): libsodium reports an undecodable argument only through a return code
    that rbcl drops, yielding the identity, so this function must never see unchecked bytes."""
    return bytes(rbcl.crypto_core_ristretto255_add(p, q))


def sub(p: bytes, q: bytes) -> bytes:
    """Return `p - q`; same precondition as `add`."""
    return bytes(rbcl.crypto_core_ristretto255_sub(p, q))


def scalar_add(a: bytes, b: bytes) -> bytes:
    """Return `a + b mod L`."""
    return bytes(rbcl.crypto_core_ristretto255_scalar_add(a, b))


def scalar_sub(a: bytes, b: bytes) -> bytes:
    """Return `a - b mod L`."""
    return bytes(rbcl.crypto_core_ristretto255_scalar_sub(a, b))


def scalar_mul(a: bytes, b: bytes) -> bytes:
    """Return `a·b mod L`."""
    return bytes(rbcl.crypto_core_ristretto255_scalar_mul(a, b))


def scalar_negate(a: bytes) -> bytes:
    """Return `-a mod L`."""
    return bytes(rbcl.crypto_core_ristretto255_scalar_negate(a))


def scalar_invert(a: bytes) -> bytes:
    """Return `a^-1 mod L`; zero has no inverse and raises InvalidInputError."""
    if len(a) != SCALAR_SIZE:
        raise InvalidInputError("scalar has the wrong length")
    if _is_zero_mod_order(a):
        raise InvalidInputError("zero has no inverse")
    return bytes(rbcl.crypto_core_ristretto255_scalar_invert(a))


def scalar_batch_invert(scalars: Sequence[bytes]) -> list[bytes]:
    """Invert many scalars with one inversion (Montgomery's trick).

    Why: libsodium's inversion costs about 0.6 of a scalar multiplication, a multiplication of
    scalars about 0.015, so unblinding a batch of n costs one inversion plus 3(n-1) products
    instead of n inversions. All scalars must be non-zero (checked through the single inversion:
    a zero anywhere makes the product zero).
    """
    if not scalars:
        return []
    prefix = [scalars[0]]
    for s in scalars[1:]:
        prefix.append(scalar_mul(prefix[-1], s))
    inv = scalar_invert(prefix[-1])
    out = [b""] * len(scalars)
    for i in range(len(scalars) - 1, 0, -1):
        out[i] = scalar_mul(inv, prefix[i - 1])
        inv = scalar_mul(inv, scalars[i])
    out[0] = inv
    return out


def random_scalar(rng: Rng | None = None) -> bytes:
    """Return a uniformly random non-zero scalar (RFC 9497 RandomScalar).

    `rng` defaults to `os.urandom`; tests pass a deterministic one. Never pass a predictable rng
    in production: a predictable blind lets the server strip it and test guesses of the
    identifier, and a predictable proof nonce `r` reveals `skS` from one proof (`(r - s)/c`).
    """
    draw = os.urandom if rng is None else rng
    # A zero draw has probability 2^-252; several in a row mean a broken rng (one stuck at zeros,
    # say), which must fail loudly instead of looping forever.
    for _ in range(_RANDOM_SCALAR_ATTEMPTS):
        wide = draw(_RANDOM_SCALAR_BYTES)
        if len(wide) != _RANDOM_SCALAR_BYTES:
            raise InvalidInputError("rng returned the wrong number of bytes")
        s = bytes(rbcl.crypto_core_ristretto255_scalar_reduce(bytes(wide)))
        if not hmac.compare_digest(s, _ZERO_SCALAR):
            return s
    raise InvalidInputError("rng keeps producing the zero scalar")
