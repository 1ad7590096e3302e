"""Blind evaluation with the network's OPRF key, and decoding of the elements clients send.

Every element that reaches the key goes through `decode_elements` first: ristretto255 has no
small subgroup, but the identity and malformed encodings must still be refused before the key
touches them (RFC 9497 section 7.1), and refused one way, whatever the cause.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from protocol.errors import DeserializeError
from protocol.hazmat.ristretto255 import deserialize_element
from protocol.oprf import VOPRFServer
from server.context import AppContext
from server.oprf.errors import InvalidElement, KeyMismatch

_ELEMENT_HEX = re.compile(r"[0-9a-f]{64}")


def decode_element(value: str, *, index: int) -> bytes:
    """The 32 bytes of a lower-case hex element, checked to be a valid non-identity point."""
    # The detail never echoes the value: it may be an unblinded pseudonym.
    if _ELEMENT_HEX.fullmatch(value) is None:
        raise InvalidElement("the element is not 32 bytes of lower-case hex", index=index)
    try:
        return deserialize_element(bytes.fromhex(value))
    except DeserializeError:
        raise InvalidElement(
            "the element is not a valid non-identity ristretto255 element", index=index
        ) from None


def decode_elements(values: Sequence[str]) -> list[bytes]:
    return [decode_element(v, index=i) for i, v in enumerate(values)]


def require_current_key(ctx: AppContext, key_id: str) -> None:
    if key_id != ctx.keys.oprf_key_id:
        raise KeyMismatch(
            f"the current OPRF key is {ctx.keys.oprf_key_id}; fetch GET /v1/oprf/key again"
        )


@functools.lru_cache(maxsize=4)
def _server(secret: bytes) -> VOPRFServer:
    """One `VOPRFServer` per key for the life of the process: building one checks the key and
    derives the public key (a base-point multiplication), work a request should not repeat."""
    return VOPRFServer(secret)


def blind_evaluate(ctx: AppContext, blinded: Sequence[bytes]) -> tuple[list[bytes], bytes]:
    """VOPRF batch evaluation with one DLEQ proof for all of `blinded` (from `decode_elements`).
    An element that is not a canonical non-identity point raises `InvalidElement` with its index
    before anything is returned: the evaluation checks each again on its own (for free: libsodium
    decodes each element in its multiplication), so nothing unchecked reaches the key."""
    try:
        return _server(ctx.keys.oprf_secret).blind_evaluate_batch(list(blinded))
    except DeserializeError as exc:
        raise InvalidElement(
            "the element is not a valid non-identity ristretto255 element",
            index=exc.index if exc.index is not None else 0,
        ) from None
