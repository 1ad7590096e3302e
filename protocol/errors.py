"""Exceptions of the blind-match protocol, named after the errors of RFC 9497 (section 5.3 of
the RFC names them, and so do other implementations such as facebook/voprf).

Why only a few: callers should not branch on *why* a cryptographic check failed, and an API that
raises many fine-grained errors tends to leak that reason to a remote party (a padding-oracle style
distinguisher). The server maps every `ProtocolError` to one opaque error at its boundary, as
Fernet does with `InvalidToken`. Messages never contain input bytes, so no identifier or secret can
end up in a log through an exception.
"""

from __future__ import annotations

__all__ = [
    "DeriveKeyPairError",
    "DeserializeError",
    "InvalidInputError",
    "InverseError",
    "ProtocolError",
    "VerifyError",
]


class ProtocolError(Exception):
    """Base of every error raised by `protocol`; catch this at a service boundary."""


class InvalidInputError(ProtocolError):
    """An input is outside what the protocol accepts (wrong size, empty batch, zero scalar, an
    input that hashes to the identity element, a mode or parameter out of range)."""


class DeserializeError(ProtocolError):
    """Bytes do not encode a valid group element or scalar: wrong length, a non-canonical
    encoding, a point not on the group, the identity element, or a scalar not below the order.

    `index` is the position of the offending element when a server batch evaluation refuses one,
    so a service can name it without decoding every element a second time beforehand.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class VerifyError(ProtocolError):
    """A DLEQ proof does not verify: the server did not use the key it published."""


class DeriveKeyPairError(ProtocolError):
    """`derive_key_pair` found no non-zero scalar in 256 attempts (probability about 2^-64000;
    kept because RFC 9497 defines it rather than looping forever)."""


class InverseError(ProtocolError):
    """POPRF: the tweaked key `skS + H(info)` is zero, so it has no inverse. Finding such an
    `info` amounts to knowing `skS`."""
