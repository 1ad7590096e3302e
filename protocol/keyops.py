"""What a holder of the OPRF key does with it, as a safe API above `protocol.hazmat` (issue 21):
the server evaluates elements, wraps and unwraps stored pseudonyms (`P̂ = w·P`,
docs/protocol.md), makes new keys and rotates them, and imports only this module for that.

Safe means: every element is validated (a canonical, non-identity ristretto255 encoding) and
every scalar is a canonical non-zero one, so no call computes with a value other than the one
the caller meant or returns the identity; new scalars come from the operating system's random
source only (a predictable one would give the key away, see `hazmat.ristretto255.random_scalar`).

Elements and scalars are 32-byte strings, as everywhere in `protocol`.
"""

from __future__ import annotations

import hmac

from protocol.errors import DeserializeError, InvalidInputError
from protocol.hazmat import ristretto255 as _group

__all__ = [
    "ELEMENT_SIZE",
    "SCALAR_SIZE",
    "decode_element",
    "invert",
    "multiply",
    "new_scalar",
    "public_key",
    "scalar_product",
]

#: Bytes of an encoded element (a blinded or evaluated element, a pseudonym).
ELEMENT_SIZE = _group.ELEMENT_SIZE
#: Bytes of a scalar (a key, a wrapping scalar, a rotation's delta).
SCALAR_SIZE = _group.SCALAR_SIZE


def _scalar(data: bytes) -> bytes:
    """`data` as a canonical non-zero scalar, or `InvalidInputError`."""
    try:
        scalar = _group.deserialize_scalar(data)
    except DeserializeError as exc:
        raise InvalidInputError(str(exc)) from None
    # Constant time: the scalar is a secret key.
    if hmac.compare_digest(scalar, bytes(SCALAR_SIZE)):
        raise InvalidInputError("scalar is zero")
    return scalar


def decode_element(data: bytes) -> bytes:
    """`data` if it is the canonical encoding of a non-identity element; else `DeserializeError`
    (RFC 9497 DeserializeElement)."""
    return _group.deserialize_element(data)


def multiply(scalar: bytes, element: bytes) -> bytes:
    """`scalar·element`: an evaluation (`skS·B`), a wrap (`w·P`), an unwrap (`w⁻¹·P̂`) or a
    rotation's step (`δ·P`). `DeserializeError` when `element` is not a valid non-identity
    element, `InvalidInputError` when `scalar` is zero or not reduced."""
    return _group.scalar_mult(scalar, element)


def public_key(secret: bytes) -> bytes:
    """The public key `secret·G` of a key (`InvalidInputError` for a zero scalar)."""
    return _group.scalar_mult_base(secret)


def new_scalar() -> bytes:
    """A uniformly random non-zero scalar from the operating system: a new key, a wrapping
    scalar or a rotation's delta."""
    return _group.random_scalar()


def invert(scalar: bytes) -> bytes:
    """`scalar⁻¹ mod L` (the unwrapping scalar of a wrap); zero raises `InvalidInputError`."""
    return _group.scalar_invert(_scalar(scalar))


def scalar_product(a: bytes, b: bytes) -> bytes:
    """`a·b mod L` of two canonical non-zero scalars: a key rotated by a delta (`δ·skS`)."""
    return _group.scalar_mul(_scalar(a), _scalar(b))
