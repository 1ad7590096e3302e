"""refcheck's blind-match protocol core: RFC 9497 (V/PO)PRF over ristretto255-SHA512 and the
derivations of docs/protocol.md (version 2: `protocol.entry`, `protocol.claim`,
`protocol.sealed_keys`, `protocol.filter`, `protocol.signed`). A pure library (no web, no
database) so the server and the client SDK run literally the same code on both sides of the
protocol.

`protocol.hazmat` holds the raw group operations; everything here is the safe layer above it.
"""

from protocol.errors import (
    DeriveKeyPairError,
    DeserializeError,
    InvalidInputError,
    InverseError,
    ProtocolError,
    VerifyError,
)
from protocol.oprf import (
    MODE_OPRF,
    MODE_POPRF,
    MODE_VOPRF,
    SUITE,
    OPRFClient,
    OPRFServer,
    POPRFClient,
    POPRFServer,
    VOPRFClient,
    VOPRFServer,
    derive_key_pair,
    generate_key_pair,
    unblind,
)

__all__ = [
    "MODE_OPRF",
    "MODE_POPRF",
    "MODE_VOPRF",
    "SUITE",
    "DeriveKeyPairError",
    "DeserializeError",
    "InvalidInputError",
    "InverseError",
    "OPRFClient",
    "OPRFServer",
    "POPRFClient",
    "POPRFServer",
    "ProtocolError",
    "VOPRFClient",
    "VOPRFServer",
    "VerifyError",
    "derive_key_pair",
    "generate_key_pair",
    "unblind",
]
