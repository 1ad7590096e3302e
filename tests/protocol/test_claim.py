"""The entries-call claim proof (docs/protocol.md, "Check (HR system)", step 5): a Schnorr proof
that the claimant knows the blind `r` with `Z = r·P`, bound to check, consent, index and tag."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.claim import CLAIM_DST, _prove_claim_with_nonce, prove_claim, verify_claim
from protocol.encoding import lp
from protocol.entry import hash_to_group, tag
from protocol.errors import InvalidInputError, VerifyError
from protocol.hazmat.hash_to_curve import hash_to_scalar
from protocol.hazmat.ristretto255 import (
    GROUP_ORDER,
    IDENTITY,
    add,
    random_scalar,
    scalar_mul,
    scalar_mult,
    scalar_sub,
)
from protocol.oprf import MODE_VOPRF, VOPRFClient, VOPRFServer, derive_key_pair

SK, PK = derive_key_pair(bytes(32), b"test", MODE_VOPRF)
VALUE = b"refcheck/v1/email/a@example.org"
OTHER_VALUE = b"refcheck/v1/email/b@example.org"


def seeded_rng(seed: bytes) -> Callable[[int], bytes]:
    counter = itertools.count()
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(4, "big")).digest(n)


def checked(value: bytes, seed: bytes = b"blind") -> tuple[bytes, bytes, bytes]:
    """A real VOPRF round: the client's blind r, the evaluated element Z and the unblinded P."""
    client = VOPRFClient(PK)
    r, blinded = client.blind(value, rng=seeded_rng(seed))
    evaluated, proof = VOPRFServer(SK).blind_evaluate_batch([blinded], rng=seeded_rng(b"s"))
    (p,) = client.verify_and_unblind([r], [blinded], evaluated, proof)
    return r, evaluated[0], p


R, Z, P = checked(VALUE)
R2, Z2, P2 = checked(OTHER_VALUE, b"blind2")


def statement(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "check_id": "check-1",
        "consent_id": "consent-1",
        "index": 3,
        "tag": tag(P),
        "p": P,
        "z": Z,
    }
    base.update(extra)
    return base


def test_evaluated_element_is_blind_times_pseudonym() -> None:
    assert Z == scalar_mult(R, P)
    assert P == scalar_mult(SK, hash_to_group(VALUE))


def test_claim_proof_round_trips() -> None:
    proof = prove_claim(**statement(), r=R)
    assert len(proof) == 64
    verify_claim(**statement(), proof=proof)


def test_claim_proof_is_the_written_schnorr_transcript() -> None:
    k = random_scalar(seeded_rng(b"k"))
    proof = _prove_claim_with_nonce(k, **statement(), r=R)
    t = scalar_mult(k, P)
    transcript = lp("check-1") + lp("consent-1") + b"\x00\x03" + tag(P) + P + Z + t
    c = hash_to_scalar(transcript, b"HashToScalar-refcheck/v2/claim")
    assert CLAIM_DST == b"HashToScalar-refcheck/v2/claim"
    assert proof == c + scalar_sub(k, scalar_mul(c, R))
    # The verifier's T' = s·P + c·Z is T.
    assert add(scalar_mult(proof[32:], P), scalar_mult(c, Z)) == t


def test_claim_proofs_use_fresh_nonces() -> None:
    assert prove_claim(**statement(), r=R) != prove_claim(**statement(), r=R)


@pytest.mark.parametrize(
    "change",
    [
        {"check_id": "check-2"},
        {"consent_id": "consent-2"},
        {"index": 4},
        {"tag": tag(P2), "p": P2, "z": Z2},
        {"z": Z2},
        {"check_id": "check-", "consent_id": "1consent-1"},
    ],
    ids=["check", "consent", "index", "other-entry", "other-z", "shifted-ids"],
)
def test_a_claim_proof_does_not_transfer_to_another_statement(change: dict[str, Any]) -> None:
    proof = prove_claim(**statement(), r=R)
    with pytest.raises(VerifyError):
        verify_claim(**statement(**change), proof=proof)


def test_knowing_p_and_z_without_r_does_not_make_a_proof() -> None:
    # A member that kept P (from an earlier check) and sees Z cannot claim without the blind.
    with pytest.raises(InvalidInputError):
        prove_claim(**statement(), r=R2)
    forged = _forge_with_wrong_blind()
    with pytest.raises(VerifyError):
        verify_claim(**statement(), proof=forged)


def _forge_with_wrong_blind() -> bytes:
    k = random_scalar(seeded_rng(b"forge"))
    t = scalar_mult(k, P)
    transcript = lp("check-1") + lp("consent-1") + b"\x00\x03" + tag(P) + P + Z + t
    c = hash_to_scalar(transcript, CLAIM_DST)
    return c + scalar_sub(k, scalar_mul(c, R2))


def test_verify_refuses_wrong_lengths() -> None:
    proof = prove_claim(**statement(), r=R)
    for bad in (proof[:63], proof + b"\x00", b""):
        with pytest.raises(VerifyError):
            verify_claim(**statement(), proof=bad)


def test_verify_refuses_non_canonical_scalars() -> None:
    proof = prove_claim(**statement(), r=R)
    c, s = int.from_bytes(proof[:32], "little"), int.from_bytes(proof[32:], "little")
    # s + L is the same scalar mod L: it would verify if the encoding were not checked.
    if s + GROUP_ORDER < 2**256:
        with pytest.raises(VerifyError):
            verify_claim(**statement(), proof=proof[:32] + (s + GROUP_ORDER).to_bytes(32, "little"))
    with pytest.raises(VerifyError):
        verify_claim(**statement(), proof=(c + GROUP_ORDER).to_bytes(32, "little") + proof[32:])


def test_verify_refuses_zero_scalars() -> None:
    proof = prove_claim(**statement(), r=R)
    for bad in (bytes(32) + proof[32:], proof[:32] + bytes(32)):
        with pytest.raises(VerifyError):
            verify_claim(**statement(), proof=bad)


@pytest.mark.parametrize(
    "change",
    [
        {"tag": tag(P2)},
        {"tag": tag(P)[:15]},
        {"p": IDENTITY},
        {"z": IDENTITY},
        {"z": b"\xff" * 32},
        {"p": P[:31]},
        {"index": -1},
        {"index": 65536},
        {"check_id": "x" * 65536},
    ],
    ids=[
        "tag-of-other-p",
        "short-tag",
        "identity-p",
        "identity-z",
        "invalid-z",
        "short-p",
        "negative-index",
        "index-too-large",
        "id-too-long",
    ],
)
def test_verify_refuses_malformed_statements(change: dict[str, Any]) -> None:
    proof = prove_claim(**statement(), r=R)
    with pytest.raises(VerifyError):
        verify_claim(**statement(**change), proof=proof)


@pytest.mark.parametrize(
    "change",
    [
        {"tag": tag(P2)},
        {"tag": b"\x00" * 15},
        {"p": IDENTITY},
        {"z": scalar_mult(R2, P)},
        {"index": 65536},
        {"index": True},
        {"r": bytes(32)},
        {"r": GROUP_ORDER.to_bytes(32, "little")},
        {"r": R[:31]},
    ],
    ids=[
        "tag-of-other-p",
        "short-tag",
        "identity-p",
        "z-not-r-p",
        "index-too-large",
        "bool-index",
        "zero-blind",
        "non-canonical-blind",
        "short-blind",
    ],
)
def test_prove_refuses_false_or_malformed_statements(change: dict[str, Any]) -> None:
    args = statement(r=R)
    args.update(change)
    with pytest.raises(InvalidInputError):
        prove_claim(**args)


@settings(deadline=None, max_examples=20)
@given(
    check_id=st.text(max_size=40),
    consent_id=st.text(max_size=40),
    index=st.integers(min_value=0, max_value=65535),
    seed=st.binary(min_size=1, max_size=8),
)
def test_any_honest_claim_verifies(check_id: str, consent_id: str, index: int, seed: bytes) -> None:
    try:
        lp(check_id), lp(consent_id)
    except InvalidInputError:
        return  # lone surrogates
    proof = prove_claim(
        **statement(check_id=check_id, consent_id=consent_id, index=index),
        r=R,
        rng=seeded_rng(seed),
    )
    verify_claim(**statement(check_id=check_id, consent_id=consent_id, index=index), proof=proof)
