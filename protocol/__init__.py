"""refcheck's blind-match protocol core: RFC 9497 (V/PO)PRF over ristretto255-SHA512 and the
pseudonym derivations of design/protocol.md. A pure library (no web, no database) so the server and
the client SDK run literally the same code on both sides of the protocol.

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
from protocol.pseudonym import (
    Handle,
    bucket,
    handle_key,
    match_proof,
    open_handle,
    seal_handle,
    tag,
    verify_match_proof,
)

__all__ = [
    "MODE_OPRF",
    "MODE_POPRF",
    "MODE_VOPRF",
    "SUITE",
    "DeriveKeyPairError",
    "DeserializeError",
    "Handle",
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
    "bucket",
    "derive_key_pair",
    "generate_key_pair",
    "handle_key",
    "match_proof",
    "open_handle",
    "seal_handle",
    "tag",
    "unblind",
    "verify_match_proof",
]
