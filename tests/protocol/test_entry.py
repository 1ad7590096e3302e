"""Tags, prefixes, handle keys, sealed handles, pads, fillers and their proofs
(docs/protocol.md, "Pseudonyms, tags, handles")."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import Any

import nacl.secret
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codes import KIND_CODES
from protocol.entry import (
    HANDLE_SIZE,
    PREFIX_SIZE,
    SEALED_HANDLE_SIZE,
    TAG_SIZE,
    Handle,
    evaluate_inputs,
    filler_input,
    handle_key,
    hash_to_group,
    open_handle,
    pad_input,
    prefix,
    prove_evaluations,
    seal_handle,
    tag,
    verify_evaluations,
)
from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.hazmat.ristretto255 import GROUP_ORDER, IDENTITY, scalar_mult
from protocol.identity.keys import Strength
from protocol.oprf import MODE_VOPRF, VOPRFClient, VOPRFServer, derive_key_pair

SK, PK = derive_key_pair(bytes(32), b"test", MODE_VOPRF)
OTHER_SK, OTHER_PK = derive_key_pair(bytes([1]) * 32, b"test", MODE_VOPRF)
P = scalar_mult(SK, hash_to_group(b"refcheck/v1/email/a@example.org"))
OTHER_P = scalar_mult(SK, hash_to_group(b"refcheck/v1/email/b@example.org"))


def seeded_rng(seed: bytes) -> Callable[[int], bytes]:
    counter = itertools.count()
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(4, "big")).digest(n)


def handle(**extra: Any) -> Handle:
    fields: dict[str, Any] = {
        "entry_id": "0d6c5c1e-0000-4000-8000-000000000001",
        "case_id": "0d6c5c1e-0000-4000-8000-000000000002",
        "holder_org_id": "0d6c5c1e-0000-4000-8000-000000000003",
        "holder_org_name": "Organisation Ünë",
        "kind": "email",
        "strength": "strong",
    }
    fields.update(extra)
    return Handle(**fields)


def flip(data: bytes, bit: int) -> bytes:
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << (bit % 8))]) + data[bit // 8 + 1 :]


# --- tag, prefix, handle_key ----------------------------------------------------------------


def test_tag_is_truncated_sha256_of_the_prefixed_pseudonym() -> None:
    assert tag(P) == hashlib.sha256(b"refcheck/v2/tag" + P).digest()[:16]
    assert len(tag(P)) == TAG_SIZE
    assert tag(P) != tag(OTHER_P)


def test_prefix_is_the_first_six_tag_bytes_big_endian() -> None:
    assert prefix(P) == int.from_bytes(tag(P)[:PREFIX_SIZE], "big")
    assert 0 <= prefix(P) < 2**48


def test_handle_key_is_hkdf_sha256_with_zero_salt() -> None:
    expected = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=bytes(32), info=b"refcheck/v2/handle"
    ).derive(P)
    assert handle_key(P) == expected
    assert handle_key(P) != handle_key(OTHER_P)


@pytest.mark.parametrize("f", [tag, prefix, handle_key])
def test_pseudonym_functions_refuse_wrong_length_identity_and_invalid_points(f: Any) -> None:
    for bad in (P[:31], P + b"\x00", IDENTITY, b"\xff" * 32, flip(P, 255)):
        with pytest.raises(InvalidInputError):
            f(bad)


# --- handles --------------------------------------------------------------------------------


def test_handle_plaintext_is_rfc8785_json_padded_to_256_bytes() -> None:
    h = handle()
    text = h.to_plaintext()
    assert len(text) == HANDLE_SIZE
    body = text.rstrip(b" ")
    assert body == (
        b'{"case_id":"0d6c5c1e-0000-4000-8000-000000000002",'
        b'"entry_id":"0d6c5c1e-0000-4000-8000-000000000001",'
        b'"holder_org_id":"0d6c5c1e-0000-4000-8000-000000000003",'
        b'"holder_org_name":"Organisation \xc3\x9cn\xc3\xab","kind":"email","strength":"strong"}'
    )
    assert Handle.from_plaintext(text) == h


def test_handle_refuses_json_longer_than_256_bytes() -> None:
    base = len(handle(holder_org_name="").to_plaintext().rstrip(b" "))
    handle(holder_org_name="x" * (HANDLE_SIZE - base)).to_plaintext()
    with pytest.raises(InvalidInputError):
        handle(holder_org_name="x" * (HANDLE_SIZE - base + 1)).to_plaintext()


def test_handle_accepts_every_kind_code_and_padding() -> None:
    assert "name_dob" in KIND_CODES
    for kind in KIND_CODES:
        assert handle(kind=kind).kind == kind
    assert handle(kind="padding", strength="variant").kind == "padding"


def test_handle_takes_a_strength_member_and_stores_its_value() -> None:
    h = handle(strength=Strength.EXACT)
    assert h.strength == "exact" and type(h.strength) is str
    assert h == handle(strength="exact")


@pytest.mark.parametrize(
    "extra",
    [
        {"kind": "shoe_size"},
        {"kind": "Email"},
        {"strength": "weak"},
        {"kind": "padding", "strength": "strong"},
        {"entry_id": 1},
        {"holder_org_name": None},
    ],
)
def test_handle_refuses_unknown_kinds_strengths_and_non_strings(extra: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        handle(**extra)


def _plain(body: bytes) -> bytes:
    return body + b" " * (HANDLE_SIZE - len(body))


@pytest.mark.parametrize(
    "data",
    [
        _plain(b'{"case_id":"c","entry_id":"e","holder_org_id":"o","holder_org_name":"n"}'),
        _plain(
            b'{"case_id":"c","entry_id":"e","extra":"x","holder_org_id":"o",'
            b'"holder_org_name":"n","kind":"email","strength":"strong"}'
        ),
        _plain(
            b'{"entry_id":"e","case_id":"c","holder_org_id":"o",'
            b'"holder_org_name":"n","kind":"email","strength":"strong"}'
        ),
        _plain(
            b'{"case_id":"c","case_id":"c","entry_id":"e","holder_org_id":"o",'
            b'"holder_org_name":"n","kind":"email","strength":"strong"}'
        ),
        _plain(
            b'{"case_id":"c","entry_id":"e","holder_org_id":"o",'
            b'"holder_org_name":"n","kind":"email","strength":"weak"}'
        ),
        _plain(
            b'{"case_id": "c","entry_id":"e","holder_org_id":"o",'
            b'"holder_org_name":"n","kind":"email","strength":"strong"}'
        ),
        _plain(
            b'{"case_id":"c","entry_id":"e","holder_org_id":"o",'
            b'"holder_org_name":"\\u006e","kind":"email","strength":"strong"}'
        ),
        _plain(b'["case_id"]'),
        _plain(b"\xff"),
        handle().to_plaintext()[:-1],
        handle().to_plaintext() + b" ",
        handle().to_plaintext()[:-1] + b"x",
        handle().to_plaintext()[:-1] + b"\x00",
    ],
    ids=[
        "missing-fields",
        "extra-field",
        "unsorted-keys",
        "duplicate-key",
        "bad-strength",
        "whitespace-inside",
        "needless-escape",
        "not-an-object",
        "not-utf8",
        "short",
        "long",
        "junk-after",
        "nul-padding",
    ],
)
def test_handle_from_plaintext_is_strict(data: bytes) -> None:
    with pytest.raises(DeserializeError):
        Handle.from_plaintext(data)


@settings(deadline=None, max_examples=50)
@given(
    name=st.text(max_size=40),
    kind=st.sampled_from(["national_id", "passport", "email", "phone", "name_dob"]),
    strength=st.sampled_from(["strong", "exact", "variant"]),
)
def test_handle_plaintext_round_trips(name: str, kind: str, strength: str) -> None:
    try:
        h = handle(holder_org_name=name, kind=kind, strength=strength)
        text = h.to_plaintext()
    except InvalidInputError:
        return  # lone surrogates are not valid Unicode
    assert Handle.from_plaintext(text) == h


# --- sealing --------------------------------------------------------------------------------


def test_sealed_handle_opens_with_its_pseudonym() -> None:
    sealed = seal_handle(P, handle())
    assert len(sealed) == SEALED_HANDLE_SIZE == 24 + 16 + 256
    assert open_handle(P, sealed) == handle()


def test_sealed_handle_is_nonce_then_secretbox() -> None:
    rng = seeded_rng(b"nonce")
    nonce = seeded_rng(b"nonce")(24)
    sealed = seal_handle(P, handle(), rng=rng)
    assert sealed[:24] == nonce
    box = nacl.secret.SecretBox(handle_key(P))
    assert bytes(box.encrypt(handle().to_plaintext(), nonce)) == sealed


def test_sealing_twice_uses_fresh_nonces() -> None:
    assert seal_handle(P, handle()) != seal_handle(P, handle())


def test_sealed_handle_does_not_open_with_another_pseudonym() -> None:
    assert open_handle(OTHER_P, seal_handle(P, handle())) is None


def test_tampered_or_resized_sealed_handle_does_not_open() -> None:
    sealed = seal_handle(P, handle())
    for bit in (0, 24 * 8, len(sealed) * 8 - 1):
        assert open_handle(P, flip(sealed, bit)) is None
    assert open_handle(P, sealed[:-1]) is None
    assert open_handle(P, sealed + b"\x00") is None
    assert open_handle(P, b"") is None


def test_a_handle_that_opens_but_is_malformed_is_an_error() -> None:
    box = nacl.secret.SecretBox(handle_key(P))
    sealed = bytes(box.encrypt(b" " * HANDLE_SIZE, bytes(24)))
    with pytest.raises(DeserializeError):
        open_handle(P, sealed)


def test_seal_refuses_an_rng_that_returns_the_wrong_length() -> None:
    with pytest.raises(InvalidInputError):
        seal_handle(P, handle(), rng=lambda n: bytes(n - 1))


# --- hash_to_group and the VOPRF ------------------------------------------------------------


def test_hash_to_group_times_key_is_the_unblinded_voprf_evaluation() -> None:
    value = b"refcheck/v1/email/a@example.org"
    client = VOPRFClient(PK)
    blind, blinded = client.blind(value, rng=seeded_rng(b"blind"))
    evaluated, proof = VOPRFServer(SK).blind_evaluate_batch([blinded], rng=seeded_rng(b"r"))
    unblinded = client.verify_and_unblind([blind], [blinded], evaluated, proof)
    assert unblinded == [scalar_mult(SK, hash_to_group(value))] == [P]
    assert evaluate_inputs(SK, [value]) == [P]


def test_hash_to_group_refuses_overlong_inputs() -> None:
    hash_to_group(b"x" * 65535)
    with pytest.raises(InvalidInputError):
        hash_to_group(b"x" * 65536)


# --- pads and fillers -----------------------------------------------------------------------


def test_pad_input_layout() -> None:
    assert pad_input("case-1", 3) == b"refcheck/v2/pad" + b"\x00\x06case-1" + b"\x00\x03"
    assert pad_input("é", 0) == b"refcheck/v2/pad\x00\x02\xc3\xa9\x00\x00"


def test_pad_inputs_of_different_cases_and_slots_differ() -> None:
    inputs = {pad_input(c, i) for c in ("a", "ab", "b") for i in range(3)}
    assert len(inputs) == 9


def test_pad_input_refuses_slots_outside_two_bytes() -> None:
    pad_input("c", 65535)
    for bad in (-1, 65536):
        with pytest.raises(InvalidInputError):
            pad_input("c", bad)


def test_filler_input_layout_and_numbering_from_one() -> None:
    assert filler_input(1) == b"refcheck/v2/fill\x00\x00\x00\x01"
    assert filler_input(2**32 - 1) == b"refcheck/v2/fill\xff\xff\xff\xff"
    for bad in (0, -1, 2**32, True):
        with pytest.raises(InvalidInputError):
            filler_input(bad)


def test_evaluations_of_pads_and_fillers_prove_and_verify() -> None:
    inputs = [pad_input("case-1", i) for i in range(3, 6)] + [filler_input(1)]
    points = evaluate_inputs(SK, inputs)
    assert points == [scalar_mult(SK, hash_to_group(x)) for x in inputs]
    proof = prove_evaluations(SK, inputs, points)
    assert len(proof) == 64
    verify_evaluations(PK, inputs, points, proof)


def test_verify_evaluations_refuses_another_key() -> None:
    inputs = [filler_input(1)]
    points = evaluate_inputs(SK, inputs)
    proof = prove_evaluations(SK, inputs, points)
    with pytest.raises(VerifyError):
        verify_evaluations(OTHER_PK, inputs, points, proof)


def test_verify_evaluations_refuses_a_planted_point() -> None:
    # A server substituting someone's real P for a pad cannot prove it.
    inputs = [pad_input("case-1", 3), pad_input("case-1", 4)]
    points = evaluate_inputs(SK, inputs)
    planted = [points[0], P]
    with pytest.raises(VerifyError):
        verify_evaluations(PK, inputs, planted, prove_evaluations(SK, inputs, planted))
    with pytest.raises(VerifyError):
        verify_evaluations(PK, inputs, planted, prove_evaluations(SK, inputs, points))


def test_verify_evaluations_refuses_other_inputs() -> None:
    inputs = [pad_input("case-1", 3)]
    points = evaluate_inputs(SK, inputs)
    proof = prove_evaluations(SK, inputs, points)
    with pytest.raises(VerifyError):
        verify_evaluations(PK, [pad_input("case-2", 3)], points, proof)


def test_verify_evaluations_refuses_malformed_points_proofs_and_counts() -> None:
    inputs = [filler_input(1)]
    points = evaluate_inputs(SK, inputs)
    proof = prove_evaluations(SK, inputs, points)
    bad_cases = [
        (inputs, [IDENTITY], proof),
        (inputs, [b"\xff" * 32], proof),
        (inputs, points, proof[:63]),
        (inputs, points, flip(proof, 3)),
        (inputs, points, proof[:32] + (GROUP_ORDER + 1).to_bytes(32, "little")),
        (inputs + [filler_input(2)], points, proof),
        ([], [], proof),
    ]
    for ins, pts, prf in bad_cases:
        with pytest.raises(VerifyError):
            verify_evaluations(PK, ins, pts, prf)
    with pytest.raises(InvalidInputError):
        verify_evaluations(IDENTITY, inputs, points, proof)


def test_evaluate_refuses_bad_secret_keys() -> None:
    for bad in (bytes(32), SK[:31], GROUP_ORDER.to_bytes(32, "little")):
        with pytest.raises(InvalidInputError):
            evaluate_inputs(bad, [filler_input(1)])
        with pytest.raises(InvalidInputError):
            prove_evaluations(bad, [filler_input(1)], [P])
