"""Hashing to ristretto255 and to its scalars (RFC 9380 expand_message_xmd with SHA-512, as
RFC 9497 specifies for the ristretto255-SHA512 suite).

The 64 uniform bytes go to libsodium: `crypto_core_ristretto255_from_hash` is the RFC 9496
one-way map (two Elligator maps and an addition) and `scalar_reduce` the wide reduction, so no
group arithmetic is written here.
"""

from __future__ import annotations

import functools
import hashlib

import rbcl

from protocol.errors import InvalidInputError

__all__ = ["expand_message_xmd", "hash_to_group", "hash_to_scalar"]

_B_IN_BYTES = 64  # SHA-512 output size
_S_IN_BYTES = 128  # SHA-512 block size
_UNIFORM_BYTES = 64  # RFC 9497: L = 64 for both HashToGroup and HashToScalar of ristretto255
# Z_pad is one full zero block, so hashing it is the same work for every call: keep the state
# after it and copy that instead (saves one SHA-512 compression per hash, which adds up in
# batch proofs that hash once per element).
_AFTER_Z_PAD = hashlib.sha512(bytes(_S_IN_BYTES))
_OVERSIZE_DST_PREFIX = b"H2C-OVERSIZE-DST-"


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 expand_message_xmd with SHA-512.

    A DST longer than 255 bytes is first hashed, as section 5.3.3 requires, rather than refused.
    """
    if len(dst) > 255:
        dst = hashlib.sha512(_OVERSIZE_DST_PREFIX + dst).digest()
    ell = -(-length // _B_IN_BYTES)
    if ell > 255 or length > 65535 or length <= 0:
        raise InvalidInputError("requested output length is out of range")
    dst_prime = dst + len(dst).to_bytes(1, "big")
    h = _AFTER_Z_PAD.copy()
    h.update(msg)
    h.update(length.to_bytes(2, "big") + b"\x00" + dst_prime)
    b0 = h.digest()
    bi = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    out = [bi]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, bi, strict=True))
        bi = hashlib.sha512(mixed + i.to_bytes(1, "big") + dst_prime).digest()
        out.append(bi)
    return b"".join(out)[:length]


@functools.lru_cache(maxsize=32)
def _xmd64_suffixes(dst: bytes) -> tuple[bytes, bytes]:
    """The constant tails of the two hashes of a 64-byte expansion under `dst`."""
    if len(dst) > 255:
        dst = hashlib.sha512(_OVERSIZE_DST_PREFIX + dst).digest()
    dst_prime = dst + len(dst).to_bytes(1, "big")
    return _UNIFORM_BYTES.to_bytes(2, "big") + b"\x00" + dst_prime, b"\x01" + dst_prime


def _expand_64(msg: bytes, dst: bytes) -> bytes:
    """`expand_message_xmd(msg, dst, 64)`: one output block (`b_1`), with the DST tails cached.

    Why a second code path: a batch proof hashes once per element, and the general function's
    per-call setup is about a third of that hashing time. The vectors pin both paths.
    """
    tail0, tail1 = _xmd64_suffixes(dst)
    h = _AFTER_Z_PAD.copy()
    h.update(msg)
    h.update(tail0)
    return hashlib.sha512(h.digest() + tail1).digest()


def hash_to_group(msg: bytes, dst: bytes) -> bytes:
    """RFC 9497 HashToGroup for ristretto255: hash_to_ristretto255 of RFC 9380 appendix B.

    The result may in theory be the identity (probability about 2^-252); callers that must refuse
    it (Blind, Evaluate) check.
    """
    return bytes(rbcl.crypto_core_ristretto255_from_hash(_expand_64(msg, dst)))


def hash_to_scalar(msg: bytes, dst: bytes) -> bytes:
    """RFC 9497 HashToScalar for ristretto255: 64 uniform bytes read little-endian, reduced mod L.

    64 bytes (not 32) so the reduction bias is below 2^-250.
    """
    return bytes(rbcl.crypto_core_ristretto255_scalar_reduce(_expand_64(msg, dst)))
