"""The entries-call claim proof of protocol v2 (docs/protocol.md, "Check (HR system)", step 5).

A claim says "my check's evaluated element `Z_index` is `r·P` for the `P` of this tag, and I know
`r`" (`r` is the client's blind). It is a Schnorr proof of knowledge of `r` with base `P`, bound
to the check, the consent, the index and the tag:

    k random, T = k·P,
    c = HashToScalar(lp(check_id) || lp(consent_id) || I2OSP(index, 2) || tag || P || Z || T)
        under the DST b"HashToScalar-refcheck/v2/claim",
    s = k - c·r, sent as c || s (canonical little-endian scalars);
    the server checks c against T' = s·P + c·Z.

Why: a tag alone is something anyone who once saw `P` can compute, so without the proof a member
could fetch entries (and start disclosures) for people outside any consented check. The proof
shows the claimant's own check produced `P`, and the transcript stops a proof being replayed for
another check, consent, index or tag.
"""

from __future__ import annotations

import hmac

from protocol.encoding import i2osp, lp
from protocol.entry import TAG_SIZE
from protocol.entry import tag as tag_of
from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.hazmat.hash_to_curve import hash_to_scalar
from protocol.hazmat.ristretto255 import (
    SCALAR_SIZE,
    Rng,
    add,
    deserialize_element,
    deserialize_scalar,
    random_scalar,
    scalar_mul,
    scalar_mult,
    scalar_sub,
)

__all__ = ["CLAIM_DST", "CLAIM_PROOF_SIZE", "prove_claim", "verify_claim"]

CLAIM_DST = b"HashToScalar-refcheck/v2/claim"
CLAIM_PROOF_SIZE = 2 * SCALAR_SIZE

_ZERO = bytes(SCALAR_SIZE)


def _transcript(
    check_id: str, consent_id: str, index: int, tag_: bytes, p: bytes, z: bytes, t: bytes
) -> bytes:
    return lp(check_id) + lp(consent_id) + i2osp(index, 2) + tag_ + p + z + t


def _challenge(
    check_id: str, consent_id: str, index: int, tag_: bytes, p: bytes, z: bytes, t: bytes
) -> bytes:
    return hash_to_scalar(_transcript(check_id, consent_id, index, tag_, p, z, t), CLAIM_DST)


def _check_statement(index: int, tag_: bytes, p: bytes, z: bytes) -> None:
    """Lengths and points of a claim's statement; InvalidInputError or DeserializeError."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 1 << 16:
        raise InvalidInputError("claim index must be in 0 .. 65535")
    if len(tag_) != TAG_SIZE:
        raise InvalidInputError(f"tag must be {TAG_SIZE} bytes")
    deserialize_element(p)
    deserialize_element(z)
    # The tag names the P the server verifies against; a claim pairing a tag with another P
    # would be a statement about an entry the claimant did not hit.
    if not hmac.compare_digest(tag_of(p), tag_):
        raise InvalidInputError("tag is not the tag of P")


def _prove_claim_with_nonce(
    k: bytes,
    *,
    check_id: str,
    consent_id: str,
    index: int,
    tag: bytes,
    p: bytes,
    z: bytes,
    r: bytes,
) -> bytes:
    """`prove_claim` with a given nonce `k`: for the worked examples and tests only, since a known
    or repeated `k` gives away `r` (`r = (k - s)/c`) and with it the check's blind."""
    try:
        _check_statement(index, tag, p, z)
        blind = deserialize_scalar(r)
    except DeserializeError as e:
        raise InvalidInputError(str(e)) from None
    if hmac.compare_digest(blind, _ZERO):
        raise InvalidInputError("blind must not be zero")
    # Refuse a false statement here rather than send a proof the server will refuse.
    if not hmac.compare_digest(scalar_mult(blind, p), z):
        raise InvalidInputError("Z is not r·P")
    t = scalar_mult(k, p)
    c = _challenge(check_id, consent_id, index, tag, p, z, t)
    s = scalar_sub(k, scalar_mul(c, blind))
    return c + s


def prove_claim(
    *,
    check_id: str,
    consent_id: str,
    index: int,
    tag: bytes,
    p: bytes,
    z: bytes,
    r: bytes,
    rng: Rng | None = None,
) -> bytes:
    """The 64-byte proof `c || s` that the client knows `r` with `z = r·p`, for the claim of
    `tag` at `index` of check `check_id` under consent `consent_id`. `rng` draws the nonce
    (default `os.urandom`); never pass a predictable one (see `random_scalar`)."""
    return _prove_claim_with_nonce(
        random_scalar(rng),
        check_id=check_id,
        consent_id=consent_id,
        index=index,
        tag=tag,
        p=p,
        z=z,
        r=r,
    )


def verify_claim(
    *,
    check_id: str,
    consent_id: str,
    index: int,
    tag: bytes,
    p: bytes,
    z: bytes,
    proof: bytes,
) -> None:
    """Raise VerifyError unless `proof` is a valid claim proof for this statement.

    Every failure is VerifyError (wrong length, non-canonical or zero scalar, a malformed point or
    tag, a challenge that does not match), so the server answers all of them alike. Refusing
    non-canonical scalars keeps one proof to one encoding (`s` and `s + L` would both verify).
    """
    if not isinstance(proof, bytes) or len(proof) != CLAIM_PROOF_SIZE:
        raise VerifyError("claim proof has the wrong length")
    try:
        _check_statement(index, tag, p, z)
        c = deserialize_scalar(proof[:SCALAR_SIZE])
        s = deserialize_scalar(proof[SCALAR_SIZE:])
    except (DeserializeError, InvalidInputError):
        raise VerifyError("claim proof does not verify") from None
    # An honest prover gives c = 0 or s = 0 with probability 2^-252; refusing them keeps the
    # group layer's zero-scalar errors from surfacing as anything but a failed proof.
    if hmac.compare_digest(c, _ZERO) or hmac.compare_digest(s, _ZERO):
        raise VerifyError("claim proof does not verify")
    t = add(scalar_mult(s, p), scalar_mult(c, z))
    try:
        expected = _challenge(check_id, consent_id, index, tag, p, z, t)
    except InvalidInputError:  # an id too long for its length prefix
        raise VerifyError("claim proof does not verify") from None
    if not hmac.compare_digest(expected, c):
        raise VerifyError("claim proof does not verify")
