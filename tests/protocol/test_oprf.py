"""Properties and refusals of the OPRF layer, beyond the RFC vectors."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable

import pytest
import rbcl
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import oprf
from protocol.errors import DeserializeError, InvalidInputError, ProtocolError, VerifyError
from protocol.hazmat.hash_to_curve import hash_to_group
from protocol.hazmat.ristretto255 import GENERATOR, GROUP_ORDER, IDENTITY, scalar_mult
from protocol.oprf import (
    MODE_OPRF,
    MODE_POPRF,
    MODE_VOPRF,
    OPRFClient,
    OPRFServer,
    POPRFClient,
    POPRFServer,
    VOPRFClient,
    VOPRFServer,
    context_string,
    derive_key_pair,
    generate_key_pair,
    unblind,
)

PROPERTY = settings(deadline=None, max_examples=25)

inputs = st.binary(max_size=64)
seeds = st.binary(min_size=32, max_size=32)
batches = st.lists(st.binary(max_size=32), min_size=1, max_size=4)


def seeded_rng(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic rng, so hypothesis can replay a failing example exactly."""
    counter = itertools.count()
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(4, "big")).digest(n)


def flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << (bit % 8))]) + data[bit // 8 + 1 :]


def voprf_batch(
    sk: bytes, pk: bytes, xs: list[bytes], rng: Callable[[int], bytes]
) -> tuple[list[bytes], list[bytes], list[bytes], bytes]:
    client = VOPRFClient(pk)
    pairs = [client.blind(x, rng=rng) for x in xs]
    blinds, blinded = [b for b, _ in pairs], [e for _, e in pairs]
    evaluated, proof = VOPRFServer(sk).blind_evaluate_batch(blinded, rng=rng)
    return blinds, blinded, evaluated, proof


# --- correctness: blinded and direct evaluation agree ---------------------------------------


@given(x=inputs, key_seed=seeds, rng_seed=seeds)
@PROPERTY
def test_oprf_blind_evaluate_finalize_equals_evaluate(
    x: bytes, key_seed: bytes, rng_seed: bytes
) -> None:
    sk, _ = derive_key_pair(key_seed, b"", MODE_OPRF)
    client, server = OPRFClient(), OPRFServer(sk)
    blind, blinded = client.blind(x, rng=seeded_rng(rng_seed))
    assert client.finalize(x, blind, server.blind_evaluate(blinded)) == server.evaluate(x)


@given(xs=batches, key_seed=seeds, rng_seed=seeds)
@PROPERTY
def test_voprf_blind_evaluate_finalize_equals_evaluate(
    xs: list[bytes], key_seed: bytes, rng_seed: bytes
) -> None:
    sk, pk = derive_key_pair(key_seed, b"", MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, xs, seeded_rng(rng_seed))
    outputs = VOPRFClient(pk).finalize_batch(xs, blinds, evaluated, blinded, proof)
    assert outputs == [VOPRFServer(sk).evaluate(x) for x in xs]


@given(xs=batches, info=st.binary(max_size=32), key_seed=seeds, rng_seed=seeds)
@PROPERTY
def test_poprf_blind_evaluate_finalize_equals_evaluate(
    xs: list[bytes], info: bytes, key_seed: bytes, rng_seed: bytes
) -> None:
    sk, pk = derive_key_pair(key_seed, b"", MODE_POPRF)
    rng = seeded_rng(rng_seed)
    client, server = POPRFClient(pk), POPRFServer(sk)
    pairs = [client.blind(x, rng=rng) for x in xs]
    blinds, blinded = [b for b, _ in pairs], [e for _, e in pairs]
    evaluated, proof = server.blind_evaluate_batch(blinded, info, rng=rng)
    outputs = client.finalize_batch(xs, blinds, evaluated, blinded, proof, info)
    assert outputs == [server.evaluate(x, info) for x in xs]


@given(xs=batches, key_seed=seeds, rng_seed=seeds)
@PROPERTY
def test_verify_and_unblind_equals_key_times_hash_to_group(
    xs: list[bytes], key_seed: bytes, rng_seed: bytes
) -> None:
    sk, pk = derive_key_pair(key_seed, b"", MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, xs, seeded_rng(rng_seed))
    pseudonyms = VOPRFClient(pk).verify_and_unblind(blinds, blinded, evaluated, proof)
    dst = b"HashToGroup-" + context_string(MODE_VOPRF)
    assert pseudonyms == [scalar_mult(sk, hash_to_group(x, dst)) for x in xs]
    assert pseudonyms == [unblind(b, e) for b, e in zip(blinds, evaluated, strict=True)]


def test_single_element_blind_evaluate_and_finalize() -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    client, server = VOPRFClient(pk), VOPRFServer(sk)
    blind, blinded = client.blind(b"refcheck/v1/email/a@example.org")
    evaluated, proof = server.blind_evaluate(blinded)
    client.verify_proof([blinded], [evaluated], proof)
    assert client.finalize(
        b"refcheck/v1/email/a@example.org", blind, evaluated, blinded, proof
    ) == (server.evaluate(b"refcheck/v1/email/a@example.org"))
    psk, ppk = generate_key_pair(MODE_POPRF)
    pclient, pserver = POPRFClient(ppk), POPRFServer(psk)
    pblind, pblinded = pclient.blind(b"x")
    pevaluated, pproof = pserver.blind_evaluate(pblinded, b"info")
    assert pclient.finalize(b"x", pblind, pevaluated, pblinded, pproof, b"info") == (
        pserver.evaluate(b"x", b"info")
    )


def test_blinding_hides_the_input_from_the_server() -> None:
    client = VOPRFClient(generate_key_pair(MODE_VOPRF)[1])
    _, first = client.blind(b"same input")
    _, second = client.blind(b"same input")
    assert first != second


def test_modes_give_unrelated_outputs_for_one_key_and_input() -> None:
    sk, _ = generate_key_pair(MODE_VOPRF)
    assert OPRFServer(sk).evaluate(b"x") != VOPRFServer(sk).evaluate(b"x")
    assert VOPRFServer(sk).evaluate(b"x") != POPRFServer(sk).evaluate(b"x", b"")


# --- soundness: the proof binds the key, the elements and their order -----------------------


@given(xs=batches, seed_a=seeds, seed_b=seeds, rng_seed=seeds)
@PROPERTY
def test_proof_for_one_key_never_verifies_for_another(
    xs: list[bytes], seed_a: bytes, seed_b: bytes, rng_seed: bytes
) -> None:
    sk_a, pk_a = derive_key_pair(seed_a, b"", MODE_VOPRF)
    _, pk_b = derive_key_pair(seed_b, b"other", MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk_a, pk_a, xs, seeded_rng(rng_seed))
    with pytest.raises(VerifyError):
        VOPRFClient(pk_b).verify_and_unblind(blinds, blinded, evaluated, proof)


@given(xs=batches, seed_a=seeds, seed_b=seeds, rng_seed=seeds)
@PROPERTY
def test_poprf_proof_for_one_key_never_verifies_for_another(
    xs: list[bytes], seed_a: bytes, seed_b: bytes, rng_seed: bytes
) -> None:
    sk_a, _ = derive_key_pair(seed_a, b"", MODE_POPRF)
    _, pk_b = derive_key_pair(seed_b, b"other", MODE_POPRF)
    rng = seeded_rng(rng_seed)
    client = POPRFClient(pk_b)
    blinded = [client.blind(x, rng=rng)[1] for x in xs]
    evaluated, proof = POPRFServer(sk_a).blind_evaluate_batch(blinded, b"info", rng=rng)
    with pytest.raises(VerifyError):
        client.verify_proof(blinded, evaluated, proof, b"info")


def test_poprf_proof_is_bound_to_info() -> None:
    sk, pk = generate_key_pair(MODE_POPRF)
    client = POPRFClient(pk)
    blinded = [client.blind(b"x")[1]]
    evaluated, proof = POPRFServer(sk).blind_evaluate_batch(blinded, b"info A")
    client.verify_proof(blinded, evaluated, proof, b"info A")
    with pytest.raises(VerifyError):
        client.verify_proof(blinded, evaluated, proof, b"info B")


@given(xs=batches, key_seed=seeds, rng_seed=seeds, index=st.integers(0, 3), bit=st.integers(0, 255))
@PROPERTY
def test_flipped_bit_in_an_evaluated_element_is_rejected(
    xs: list[bytes], key_seed: bytes, rng_seed: bytes, index: int, bit: int
) -> None:
    sk, pk = derive_key_pair(key_seed, b"", MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, xs, seeded_rng(rng_seed))
    index %= len(evaluated)
    evaluated[index] = flip(evaluated[index], bit)
    # Either no longer an element (DeserializeError) or another element (VerifyError).
    with pytest.raises((DeserializeError, VerifyError)):
        VOPRFClient(pk).verify_and_unblind(blinds, blinded, evaluated, proof)


@given(xs=batches, key_seed=seeds, rng_seed=seeds, bit=st.integers(0, 511))
@PROPERTY
def test_flipped_bit_in_a_proof_is_rejected(
    xs: list[bytes], key_seed: bytes, rng_seed: bytes, bit: int
) -> None:
    sk, pk = derive_key_pair(key_seed, b"", MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, xs, seeded_rng(rng_seed))
    # Either a non-canonical scalar (DeserializeError) or a wrong one (VerifyError).
    with pytest.raises((DeserializeError, VerifyError)):
        VOPRFClient(pk).verify_and_unblind(blinds, blinded, evaluated, flip(proof, bit))


def test_swapped_evaluations_are_rejected() -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, [b"a", b"b"], rbcl.randombytes)
    with pytest.raises(VerifyError):
        VOPRFClient(pk).verify_and_unblind(blinds, blinded, evaluated[::-1], proof)


def test_evaluation_under_another_key_with_an_honest_proof_is_rejected() -> None:
    # A server that evaluates one element with a second key and proves the batch with its
    # published key: the attack the DLEQ proof exists to stop.
    sk, pk = generate_key_pair(MODE_VOPRF)
    other, _ = generate_key_pair(MODE_VOPRF)
    client, server = VOPRFClient(pk), VOPRFServer(sk)
    pairs = [client.blind(x) for x in (b"a", b"b", b"c")]
    blinded = [e for _, e in pairs]
    evaluated, _ = server.blind_evaluate_batch(blinded)
    evaluated[1] = scalar_mult(other, blinded[1])
    proof = server.generate_proof(blinded, evaluated)
    with pytest.raises(VerifyError):
        client.verify_and_unblind([b for b, _ in pairs], blinded, evaluated, proof)


def test_generate_proof_matches_blind_evaluate_batch() -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    client, server = VOPRFClient(pk), VOPRFServer(sk)
    blinded = [client.blind(x)[1] for x in (b"a", b"b")]
    evaluated, _ = server.blind_evaluate_batch(blinded)
    client.verify_proof(blinded, evaluated, server.generate_proof(blinded, evaluated))
    psk, ppk = generate_key_pair(MODE_POPRF)
    pclient, pserver = POPRFClient(ppk), POPRFServer(psk)
    pblinded = [pclient.blind(b"a")[1]]
    pevaluated, _ = pserver.blind_evaluate_batch(pblinded, b"i")
    pclient.verify_proof(
        pblinded, pevaluated, pserver.generate_proof(pblinded, pevaluated, b"i"), b"i"
    )


@pytest.mark.parametrize("part", ["c", "s"])
def test_proof_with_a_zero_scalar_is_rejected(part: str) -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, [b"a"], rbcl.randombytes)
    forged = bytes(32) + proof[32:] if part == "c" else proof[:32] + bytes(32)
    with pytest.raises(VerifyError):
        VOPRFClient(pk).verify_and_unblind(blinds, blinded, evaluated, forged)


@pytest.mark.parametrize("part", ["c", "s"])
def test_proof_with_a_non_canonical_scalar_is_rejected(part: str) -> None:
    # s + L would verify like s if it were reduced instead of refused: a second valid proof.
    sk, pk = generate_key_pair(MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, [b"a"], rbcl.randombytes)
    c, s = int.from_bytes(proof[:32], "little"), int.from_bytes(proof[32:], "little")
    if part == "c":
        forged = (c + GROUP_ORDER).to_bytes(32, "little") + proof[32:]
    else:
        forged = proof[:32] + (s + GROUP_ORDER).to_bytes(32, "little")
    with pytest.raises(DeserializeError):
        VOPRFClient(pk).verify_and_unblind(blinds, blinded, evaluated, forged)


@pytest.mark.parametrize("size", [0, 63, 65])
def test_proof_of_wrong_length_is_rejected(size: int) -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, [b"a"], rbcl.randombytes)
    with pytest.raises(DeserializeError):
        VOPRFClient(pk).verify_and_unblind(blinds, blinded, evaluated, (proof * 2)[:size])


# --- refusals of malformed input ------------------------------------------------------------

HIGH_BIT_GENERATOR = GENERATOR[:31] + bytes([GENERATOR[31] | 0x80])
BAD_ELEMENTS = [
    pytest.param(IDENTITY, id="identity"),
    pytest.param(b"\xff" * 32, id="all-ff"),
    pytest.param(HIGH_BIT_GENERATOR, id="high-bit"),
    pytest.param(GENERATOR[:31], id="short"),
]


@pytest.mark.parametrize("element", BAD_ELEMENTS)
def test_server_refuses_a_bad_blinded_element(element: bytes) -> None:
    sk, _ = generate_key_pair(MODE_VOPRF)
    with pytest.raises(DeserializeError):
        VOPRFServer(sk).blind_evaluate_batch([GENERATOR, element])
    with pytest.raises(DeserializeError):
        OPRFServer(sk).blind_evaluate(element)
    with pytest.raises(DeserializeError):
        POPRFServer(sk).blind_evaluate(element, b"")


def test_batch_evaluation_names_the_bad_element() -> None:
    sk, _ = generate_key_pair(MODE_VOPRF)
    with pytest.raises(DeserializeError) as refused:
        VOPRFServer(sk).blind_evaluate_batch([GENERATOR, GENERATOR, IDENTITY])
    assert refused.value.index == 2
    with pytest.raises(DeserializeError) as refused:
        POPRFServer(sk).blind_evaluate_batch([b"\xff" * 32], b"")
    assert refused.value.index == 0


@pytest.mark.parametrize("element", BAD_ELEMENTS)
def test_client_refuses_a_bad_evaluated_element(element: bytes) -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, [b"a", b"b"], rbcl.randombytes)
    with pytest.raises(DeserializeError):
        VOPRFClient(pk).verify_and_unblind(blinds, blinded, [evaluated[0], element], proof)
    with pytest.raises(DeserializeError):
        unblind(blinds[0], element)


@pytest.mark.parametrize("public_key", BAD_ELEMENTS)
def test_client_refuses_a_bad_public_key(public_key: bytes) -> None:
    with pytest.raises(DeserializeError):
        VOPRFClient(public_key)
    with pytest.raises(DeserializeError):
        POPRFClient(public_key)


def test_server_refuses_a_zero_or_malformed_private_key() -> None:
    with pytest.raises(InvalidInputError):
        VOPRFServer(bytes(32))
    with pytest.raises(DeserializeError):
        VOPRFServer(GROUP_ORDER.to_bytes(32, "little"))
    with pytest.raises(DeserializeError):
        OPRFServer(b"\x01" * 31)


def test_batches_must_be_non_empty_and_aligned() -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    client, server = VOPRFClient(pk), VOPRFServer(sk)
    with pytest.raises(InvalidInputError):
        server.blind_evaluate_batch([])
    with pytest.raises(InvalidInputError):
        server.blind_evaluate_batch([GENERATOR] * (oprf.MAX_BATCH + 1))
    blinds, blinded, evaluated, proof = voprf_batch(sk, pk, [b"a", b"b"], rbcl.randombytes)
    with pytest.raises(InvalidInputError):
        client.verify_and_unblind(blinds[:1], blinded, evaluated, proof)
    with pytest.raises(InvalidInputError):
        client.verify_and_unblind([], [], [], proof)
    with pytest.raises(InvalidInputError):
        client.finalize_batch([b"a"], blinds, evaluated, blinded, proof)


def test_blinds_must_be_canonical_and_non_zero() -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    _, blinded, evaluated, proof = voprf_batch(sk, pk, [b"a"], rbcl.randombytes)
    client = VOPRFClient(pk)
    with pytest.raises(InvalidInputError):
        client.verify_and_unblind([bytes(32)], blinded, evaluated, proof)
    with pytest.raises(DeserializeError):
        client.verify_and_unblind([GROUP_ORDER.to_bytes(32, "little")], blinded, evaluated, proof)
    with pytest.raises(InvalidInputError):
        unblind(bytes(32), evaluated[0])
    with pytest.raises(InvalidInputError):
        client._blind_with(b"a", bytes(32))


def test_inputs_and_info_longer_than_the_length_prefix_are_refused() -> None:
    sk, pk = generate_key_pair(MODE_POPRF)
    too_long = b"x" * (oprf.MAX_INPUT_SIZE + 1)
    with pytest.raises(InvalidInputError):
        VOPRFClient(pk).blind(too_long)
    with pytest.raises(InvalidInputError):
        VOPRFServer(sk).evaluate(too_long)
    with pytest.raises(InvalidInputError):
        POPRFServer(sk).evaluate(b"x", too_long)
    VOPRFClient(pk).blind(b"x" * oprf.MAX_INPUT_SIZE)


def test_key_derivation_refuses_bad_parameters() -> None:
    with pytest.raises(InvalidInputError):
        derive_key_pair(b"\xa3" * 31, b"", MODE_VOPRF)
    with pytest.raises(InvalidInputError):
        derive_key_pair(b"\xa3" * 32, b"", 3)
    with pytest.raises(InvalidInputError):
        generate_key_pair(7)
    with pytest.raises(InvalidInputError):
        context_string(-1)


def test_key_generation_uses_the_given_rng() -> None:
    assert generate_key_pair(MODE_VOPRF, rng=seeded_rng(b"k")) == generate_key_pair(
        MODE_VOPRF, rng=seeded_rng(b"k")
    )
    sk, pk = generate_key_pair(MODE_VOPRF)
    assert VOPRFServer(sk).public_key == pk


def test_server_repr_does_not_show_the_private_key() -> None:
    sk, pk = generate_key_pair(MODE_VOPRF)
    text = repr(VOPRFServer(sk))
    assert sk.hex() not in text
    assert pk.hex() in text


def test_every_error_is_a_protocol_error() -> None:
    assert issubclass(DeserializeError, ProtocolError)
    assert issubclass(InvalidInputError, ProtocolError)
    assert issubclass(VerifyError, ProtocolError)


# --- cost: the fast path really is fast ------------------------------------------------------


def test_server_batch_uses_two_multiplications_per_element_and_no_extra_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pins the issue 8 cost model: n evaluations, n composite terms, Z = k·M and t3 = r·M, one
    base multiplication for t2, and no separate validity check of any element."""
    sk, pk = generate_key_pair(MODE_VOPRF)
    client, server = VOPRFClient(pk), VOPRFServer(sk)
    n = 8
    blinded = [client.blind(bytes([i]))[1] for i in range(n)]
    calls = {"mult": 0, "base": 0, "valid": 0}

    def counting(name: str, fn: Callable[..., bytes]) -> Callable[..., bytes]:
        def wrapper(*args: bytes) -> bytes:
            calls[name] += 1
            return fn(*args)

        return wrapper

    monkeypatch.setattr(
        rbcl,
        "crypto_scalarmult_ristretto255",
        counting("mult", rbcl.crypto_scalarmult_ristretto255),
    )
    monkeypatch.setattr(
        rbcl,
        "crypto_scalarmult_ristretto255_base",
        counting("base", rbcl.crypto_scalarmult_ristretto255_base),
    )
    monkeypatch.setattr(
        rbcl,
        "crypto_core_ristretto255_is_valid_point",
        counting("valid", rbcl.crypto_core_ristretto255_is_valid_point),
    )
    evaluated, proof = server.blind_evaluate_batch(blinded)
    assert calls == {"mult": 2 * n + 2, "base": 1, "valid": 0}
    monkeypatch.undo()
    client.verify_proof(blinded, evaluated, proof)
