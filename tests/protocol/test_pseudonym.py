"""Buckets, tags, sealed handles and match proofs (design/protocol.md, "Pseudonyms and buckets")."""

from __future__ import annotations

import hashlib
import hmac
import json

import nacl.secret
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import DeserializeError, InvalidInputError
from protocol.hazmat.ristretto255 import IDENTITY, scalar_mult_base
from protocol.oprf import MODE_VOPRF, VOPRFClient, VOPRFServer, generate_key_pair
from protocol.pseudonym import (
    TAG_SIZE,
    Handle,
    bucket,
    handle_key,
    match_proof,
    open_handle,
    seal_handle,
    tag,
    verify_match_proof,
)

PROPERTY = settings(deadline=None, max_examples=25)

HANDLE = Handle(
    entry_id="6f1c2d3e-0000-4000-8000-000000000001",
    case_id="6f1c2d3e-0000-4000-8000-000000000002",
    holder_org_id="6f1c2d3e-0000-4000-8000-000000000003",
    holder_org_name="Aid Org Ünïcode",
    kind="passport",
    strength="strong",
)


def some_p(n: int = 1) -> bytes:
    return scalar_mult_base(n.to_bytes(32, "little"))


# --- buckets --------------------------------------------------------------------------------


@given(value=st.binary(max_size=64), bits=st.integers(1, 24))
@PROPERTY
def test_bucket_is_the_prefix_of_the_domain_separated_hash(value: bytes, bits: int) -> None:
    b = bucket(value, bits)
    assert 0 <= b < 2**bits
    full = int.from_bytes(hashlib.sha256(b"refcheck/v1/bucket" + value).digest()[:3], "big")
    assert b == full >> (24 - bits)
    # A shorter prefix is a prefix of the longer one, so the policy can change bucket_bits.
    assert bucket(value, 24) >> (24 - bits) == b


@pytest.mark.parametrize("bits", [0, -1, 25, 64])
def test_bucket_refuses_bits_out_of_range(bits: int) -> None:
    with pytest.raises(InvalidInputError):
        bucket(b"refcheck/v1/email/a@example.org", bits)


def test_bucket_spreads_values() -> None:
    buckets = {bucket(f"refcheck/v1/email/{i}@example.org".encode(), 4) for i in range(200)}
    assert buckets == set(range(16))


# --- tags and keys --------------------------------------------------------------------------


def test_tag_is_a_truncated_domain_separated_hash() -> None:
    p = some_p()
    assert tag(p) == hashlib.sha256(b"refcheck/v1/tag" + p).digest()[:16]
    assert len(tag(p)) == TAG_SIZE
    assert tag(p) != tag(some_p(2))


def test_handle_key_is_hkdf_sha256_without_salt() -> None:
    p = some_p()
    # RFC 5869 by hand: extract with a zero salt of hash length, then one expand block.
    prk = hmac.new(bytes(32), p, hashlib.sha256).digest()
    okm = hmac.new(prk, b"refcheck/v1/handle" + b"\x01", hashlib.sha256).digest()
    assert handle_key(p) == okm
    assert handle_key(p) != handle_key(some_p(2))


@pytest.mark.parametrize("p", [b"", b"\x01" * 31, b"\x01" * 33, IDENTITY])
def test_pseudonym_functions_refuse_a_malformed_or_identity_p(p: bytes) -> None:
    for fn in (tag, handle_key, lambda q: match_proof(q, "consent")):
        with pytest.raises(InvalidInputError):
            fn(p)
    with pytest.raises(InvalidInputError):
        seal_handle(p, HANDLE)


# --- sealed handles -------------------------------------------------------------------------


def test_handle_seal_open_round_trip() -> None:
    p = some_p()
    sealed = seal_handle(p, HANDLE)
    assert open_handle(p, sealed) == HANDLE
    # A fresh nonce each time: two seals of one handle are unlinkable ciphertexts.
    assert seal_handle(p, HANDLE) != sealed


def test_wrong_p_cannot_open_a_handle() -> None:
    assert open_handle(some_p(2), seal_handle(some_p(1), HANDLE)) is None


@pytest.mark.parametrize("position", [0, 24, -1])
def test_tampered_handle_does_not_open(position: int) -> None:
    p = some_p()
    sealed = bytearray(seal_handle(p, HANDLE))
    sealed[position] ^= 1
    assert open_handle(p, bytes(sealed)) is None


@pytest.mark.parametrize("sealed", [b"", b"\x00" * 10, b"\x00" * 40])
def test_garbage_does_not_open(sealed: bytes) -> None:
    assert open_handle(some_p(), sealed) is None


def test_a_box_that_opens_but_holds_no_handle_is_an_error() -> None:
    p = some_p()
    box = nacl.secret.SecretBox(handle_key(p))
    for plaintext in (b"not json", b"[]", b'{"entry_id": "x"}'):
        with pytest.raises(DeserializeError):
            open_handle(p, bytes(box.encrypt(plaintext)))


def test_end_to_end_server_seals_with_stored_p_and_client_opens_with_derived_p() -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    server, client = VOPRFServer(sk), VOPRFClient(pk)
    value = b"refcheck/v1/passport/XK/P1234567"

    def derive() -> bytes:
        blind, blinded = client.blind(value)
        evaluated, proof = server.blind_evaluate_batch([blinded])
        return client.verify_and_unblind([blind], [blinded], evaluated, proof)[0]

    registered, checked = derive(), derive()
    assert registered == checked
    stored = {tag(registered): seal_handle(registered, HANDLE)}
    assert open_handle(checked, stored[tag(checked)]) == HANDLE
    assert verify_match_proof(registered, "consent-1", match_proof(checked, "consent-1"))


# --- Handle serialisation -------------------------------------------------------------------


def test_handle_json_is_compact_and_round_trips() -> None:
    data = HANDLE.to_json()
    assert b", " not in data and b": " not in data
    assert json.loads(data)["holder_org_name"] == "Aid Org Ünïcode"
    assert Handle.from_json(data) == HANDLE


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe",
        b"null",
        b'{"entry_id":"a"}',
        json.dumps({**json.loads(HANDLE.to_json()), "extra": "x"}).encode(),
        json.dumps({**json.loads(HANDLE.to_json()), "kind": 3}).encode(),
        json.dumps({**json.loads(HANDLE.to_json()), "strength": "weak"}).encode(),
    ],
    ids=["not-utf8", "null", "missing-fields", "extra-field", "non-string", "unknown-strength"],
)
def test_handle_from_json_refuses_anything_else(data: bytes) -> None:
    with pytest.raises(DeserializeError):
        Handle.from_json(data)


def test_handle_refuses_unknown_strength() -> None:
    with pytest.raises(InvalidInputError):
        Handle("e", "c", "o", "Org", "email", "weak")


# --- match proofs ---------------------------------------------------------------------------


def test_match_proof_is_hmac_sha256_of_the_consent_id() -> None:
    p = some_p()
    assert match_proof(p, "c-1") == hmac.new(p, b"c-1", hashlib.sha256).digest()


def test_match_proof_verifies_and_rejects_a_wrong_consent_or_p() -> None:
    p = some_p()
    proof = match_proof(p, "consent-1")
    assert verify_match_proof(p, "consent-1", proof)
    assert not verify_match_proof(p, "consent-2", proof)
    assert not verify_match_proof(some_p(2), "consent-1", proof)
    assert not verify_match_proof(p, "consent-1", proof[:-1])
    assert not verify_match_proof(p, "consent-1", b"")
