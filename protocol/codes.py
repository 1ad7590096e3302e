"""The one-byte codes of key kinds and strengths (docs/protocol.md, "Codes").

They travel in a registration's `sealed_keys` slots, where a name would not fit a fixed layout.
A code never changes meaning once published: a new key form takes the next free code, and a
retired one keeps its number unused. `protocol.identity` emits only kinds listed here (a test
checks it), so a key can never be registered under a kind the server cannot read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from protocol.identity.keys import Kind, Strength

__all__ = [
    "KIND_CODES",
    "KINDS_BY_CODE",
    "PADDING_KIND",
    "STRENGTHS_BY_CODE",
    "STRENGTH_CODES",
    "UNUSED_CODE",
]

#: An unused `sealed_keys` slot has this kind and strength code (and an all-zero element).
UNUSED_CODE = 0

#: The kind a pad entry's handle names; it has no code because no client ever sends one.
PADDING_KIND = "padding"

#: Keyed by `Kind`; a plain code string looks up the same entry.
KIND_CODES: Mapping[str, int] = MappingProxyType(
    {
        Kind.NATIONAL_ID: 0x01,
        Kind.PASSPORT: 0x02,
        Kind.EMAIL: 0x03,
        Kind.PHONE: 0x04,
        Kind.NAME_DOB: 0x05,
        Kind.NAME_DOB_VARIANT: 0x06,
        Kind.NAME_DOB_FIRST_LAST: 0x07,
        Kind.NAME_DOB_ABBREV: 0x08,
        Kind.NAME_DOB_SWAP: 0x09,
    }
)
KINDS_BY_CODE: Mapping[int, str] = MappingProxyType(
    {code: kind for kind, code in KIND_CODES.items()}
)

STRENGTH_CODES = MappingProxyType(
    {Strength.STRONG: 0x01, Strength.EXACT: 0x02, Strength.VARIANT: 0x03}
)
STRENGTHS_BY_CODE = MappingProxyType({code: s for s, code in STRENGTH_CODES.items()})
