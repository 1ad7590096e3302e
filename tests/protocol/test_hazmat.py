"""The group layer: decoding checks (RFC 9496 invalid encodings, identity, non-canonical values),
scalar checks, and hash-to-curve against RFC 9380 / RFC 9496 vectors."""

from __future__ import annotations

import hashlib

import pytest
import rbcl
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol.errors import DeserializeError, InvalidInputError
from protocol.hazmat.hash_to_curve import expand_message_xmd, hash_to_group, hash_to_scalar
from protocol.hazmat.ristretto255 import (
    GENERATOR,
    GROUP_ORDER,
    IDENTITY,
    add,
    deserialize_element,
    deserialize_scalar,
    random_scalar,
    scalar_add,
    scalar_batch_invert,
    scalar_invert,
    scalar_mul,
    scalar_mult,
    scalar_mult_base,
    scalar_negate,
    scalar_sub,
    sub,
)

FIELD_PRIME = 2**255 - 19


def le(n: int) -> bytes:
    return n.to_bytes(32, "little")


# RFC 9496 appendix A.2: encodings every implementation must refuse.
RFC9496_BAD_ENCODINGS = [
    # non-canonical field encodings
    "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    # negative field elements
    "0100000000000000000000000000000000000000000000000000000000000000",
    "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
    "c34c4e1826e5d403b78e246e88aa051c36ccf0aafebffe137d148a2bf9104562",
    "c940e5a4404157cfb1628b108db051a8d439e1a421394ec4ebccb9ec92a8ac78",
    "47cfc5497c53dc8e61c91d17fd626ffb1c49e2bca94eed052281b510b1117a24",
    "f1c6165d33367351b0da8f6e4511010c68174a03b6581212c71c0e1d026c3c72",
    "87260f7a2f12495118360f02c26a470f450dadf34a413d21042b43b9d93e1309",
    # non-square x^2
    "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
    "4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
    "de6a7b00deadc788eb6b6c8d20c0ae96c2f2019078fa604fee5b87d6e989ad7b",
    "bcab477be20861e01e4a0e295284146a510150d9817763caf1a6f4b422d67042",
    "2a292df7e32cababbd9de088d1d1abec9fc0440f637ed2fba145094dc14bea08",
    "f4a9e534fc0d216c44b218fa0c42d99635a0127ee2e53c712f70609649fdff22",
    "8268436f8c4126196cf64b3c7ddbda90746a378625f9813dd9b8457077256731",
    "2810e5cbc2cc4d4eece54f61c6f69758e289aa7ab440b3cbeaa21995c2f4232b",
    # negative xy value
    "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
    "a45fdc55c76448c049a1ab33f17023edfb2be3581e9c7aade8a6125215e04220",
    "d483fe813c6ba647ebbfd3ec41adca1c6130c2beeee9d9bf065c8d151c5f396e",
    "8a2e1d30050198c65a54483123960ccc38aef6848e1ec8f5f780e8523769ba32",
    "32888462f8b486c68ad7dd9610be5192bbeaf3b443951ac1a8118419d9fa097b",
    "227142501b9d4355ccba290404bde41575b037693cef1f438c47f8fbf35d1165",
    "5c37cc491da847cfeb9281d407efc41e15144c876e0170b499a96a22ed31e01e",
    "445425117cb8c90edcbc7c1cc0e74f747f2c1efa5630a967c64f287792a48a4b",
    # s = -1, which gives y = 0
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


def _with_high_bit(element: bytes) -> bytes:
    return element[:31] + bytes([element[31] | 0x80])


def _alias_2p_minus_s(element: bytes) -> bytes:
    """`2p - s`: even and congruent to `-s`, so a decoder without the `s < p` check would accept it
    as a second encoding of the same point."""
    return le(2 * FIELD_PRIME - int.from_bytes(element, "little"))


BAD_ELEMENTS = [
    *[
        pytest.param(bytes.fromhex(h), id=f"rfc9496-{i}")
        for i, h in enumerate(RFC9496_BAD_ENCODINGS)
    ],
    pytest.param(b"\xff" * 32, id="all-ff"),
    pytest.param(_with_high_bit(GENERATOR), id="generator-with-high-bit"),
    pytest.param(_alias_2p_minus_s(GENERATOR), id="non-canonical-field-element-2p-minus-s"),
    pytest.param(le(FIELD_PRIME), id="field-prime"),
    pytest.param(IDENTITY, id="identity"),
    pytest.param(b"", id="empty"),
    pytest.param(GENERATOR[:31], id="31-bytes"),
    pytest.param(GENERATOR + b"\x00", id="33-bytes"),
    pytest.param(GENERATOR * 2, id="64-bytes"),
]


@pytest.mark.parametrize("data", BAD_ELEMENTS)
def test_deserialize_element_refuses_bad_encoding(data: bytes) -> None:
    with pytest.raises(DeserializeError):
        deserialize_element(data)


@pytest.mark.parametrize("data", BAD_ELEMENTS)
def test_scalar_mult_refuses_bad_encoding(data: bytes) -> None:
    # The hot paths rely on the multiplication itself to validate elements.
    with pytest.raises(DeserializeError):
        scalar_mult(le(7), data)


def test_alias_test_encoding_is_really_the_generator_modulo_p() -> None:
    # Guards the test above: 2p - s must be an alias of a valid encoding, not just garbage.
    alias = int.from_bytes(_alias_2p_minus_s(GENERATOR), "little")
    assert alias % 2 == 0
    assert (alias + int.from_bytes(GENERATOR, "little")) % FIELD_PRIME == 0


def test_rfc9496_small_multiples_decode_and_encode() -> None:
    assert GENERATOR.hex() == "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"
    two_g = scalar_mult_base(le(2))
    assert two_g.hex() == "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919"
    assert deserialize_element(two_g) == two_g
    assert add(GENERATOR, GENERATOR) == two_g
    assert sub(two_g, GENERATOR) == GENERATOR


@given(st.binary(min_size=64, max_size=64))
@settings(deadline=None, max_examples=25)
def test_deserialize_element_accepts_every_non_identity_element(seed: bytes) -> None:
    element = bytes(rbcl.crypto_core_ristretto255_from_hash(seed))
    assume(element != IDENTITY)  # the map sends some inputs (all zeros) to the identity
    assert deserialize_element(element) == element


@pytest.mark.parametrize(
    "value",
    [GROUP_ORDER, GROUP_ORDER + 1, 2**255, 2**256 - 1, 2**253],
    ids=["L", "L+1", "2^255", "2^256-1", "2^253"],
)
def test_deserialize_scalar_refuses_non_canonical(value: int) -> None:
    with pytest.raises(DeserializeError):
        deserialize_scalar(value.to_bytes(32, "little"))


@pytest.mark.parametrize("data", [b"", b"\x01" * 31, b"\x01" * 33, b"\x01" * 64])
def test_deserialize_scalar_refuses_wrong_length(data: bytes) -> None:
    with pytest.raises(DeserializeError):
        deserialize_scalar(data)


@pytest.mark.parametrize("value", [0, 1, GROUP_ORDER - 1])
def test_deserialize_scalar_accepts_canonical(value: int) -> None:
    assert deserialize_scalar(le(value)) == le(value)


def test_scalar_mult_refuses_zero_and_unreduced_scalars() -> None:
    with pytest.raises(InvalidInputError):
        scalar_mult(le(0), GENERATOR)
    with pytest.raises(InvalidInputError):
        scalar_mult(le(GROUP_ORDER), GENERATOR)
    with pytest.raises(InvalidInputError):
        scalar_mult(le(2**255 + 3), GENERATOR)
    with pytest.raises(InvalidInputError):
        scalar_mult_base(le(0))
    with pytest.raises(InvalidInputError):
        scalar_mult_base(le(2**255 + 3))


@given(st.integers(min_value=2, max_value=GROUP_ORDER - 2))
@settings(deadline=None, max_examples=25)
def test_scalar_arithmetic_agrees_with_the_group(a: int) -> None:
    k = le(a)
    assert scalar_mult(scalar_invert(k), scalar_mult_base(k)) == GENERATOR
    assert scalar_mult_base(scalar_add(k, le(1))) == add(scalar_mult_base(k), GENERATOR)
    assert scalar_mult_base(scalar_sub(k, le(1))) == sub(scalar_mult_base(k), GENERATOR)
    assert scalar_add(k, scalar_negate(k)) == le(0)
    assert scalar_mul(k, scalar_invert(k)) == le(1)


def test_scalar_batch_invert_equals_single_inversions() -> None:
    scalars = [random_scalar() for _ in range(5)]
    assert scalar_batch_invert(scalars) == [scalar_invert(s) for s in scalars]
    assert scalar_batch_invert([]) == []


def test_scalar_batch_invert_refuses_zero() -> None:
    with pytest.raises(InvalidInputError):
        scalar_batch_invert([random_scalar(), le(0), random_scalar()])
    with pytest.raises(InvalidInputError):
        scalar_invert(le(0))


def test_random_scalar_uses_the_given_rng_and_refuses_a_broken_one() -> None:
    assert random_scalar(lambda n: b"\x01" * n) == random_scalar(lambda n: b"\x01" * n)
    assert random_scalar() != random_scalar()
    with pytest.raises(InvalidInputError):
        random_scalar(lambda n: bytes(n))
    with pytest.raises(InvalidInputError):
        random_scalar(lambda n: b"\x01" * (n - 1))


# RFC 9380 appendix K.3, expand_message_xmd(SHA-512).
XMD_DST = b"QUUX-V01-CS02-with-expander-SHA512-256"
XMD_VECTORS = [
    (b"", 32, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
    (b"abc", 32, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
    (
        b"",
        128,
        "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921"
        "b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e"
        "0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e"
        "b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961",
    ),
    (
        b"abc",
        128,
        "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11"
        "bdd7732d8b38adb4a0edc26a0cef4bb45217135456e58fbca1703cd6032cb134"
        "7ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b48843"
        "1851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1",
    ),
]


@pytest.mark.parametrize(("msg", "length", "expected"), XMD_VECTORS)
def test_expand_message_xmd_matches_rfc9380(msg: bytes, length: int, expected: str) -> None:
    assert expand_message_xmd(msg, XMD_DST, length).hex() == expected


def test_expand_message_xmd_hashes_an_oversize_dst() -> None:
    long_dst = b"x" * 300
    short = hashlib.sha512(b"H2C-OVERSIZE-DST-" + long_dst).digest()
    assert expand_message_xmd(b"m", long_dst, 64) == expand_message_xmd(b"m", short, 64)


@pytest.mark.parametrize("length", [0, 255 * 64 + 1, 70000])
def test_expand_message_xmd_refuses_out_of_range_length(length: int) -> None:
    with pytest.raises(InvalidInputError):
        expand_message_xmd(b"m", XMD_DST, length)


@given(msg=st.binary(max_size=300), dst=st.binary(min_size=1, max_size=300))
@settings(deadline=None, max_examples=25)
def test_hashes_use_a_64_byte_xmd_expansion(msg: bytes, dst: bytes) -> None:
    # hash_to_group and hash_to_scalar take a cached fast path; it must agree with the RFC one.
    uniform = expand_message_xmd(msg, dst, 64)
    assert hash_to_scalar(msg, dst) == bytes(rbcl.crypto_core_ristretto255_scalar_reduce(uniform))
    assert hash_to_group(msg, dst) == bytes(rbcl.crypto_core_ristretto255_from_hash(uniform))


def test_from_hash_is_the_rfc9496_map() -> None:
    # RFC 9496 appendix A.3: the map applied to SHA-512 of a label.
    label = b"Ristretto is traditionally a short shot of espresso coffee"
    uniform = hashlib.sha512(label).digest()
    element = bytes(rbcl.crypto_core_ristretto255_from_hash(uniform))
    assert element.hex() == "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46"


def test_hashes_are_domain_separated() -> None:
    assert hash_to_group(b"m", b"dst-a") != hash_to_group(b"m", b"dst-b")
    assert hash_to_scalar(b"m", b"dst-a") != hash_to_scalar(b"m", b"dst-b")
    assert deserialize_scalar(hash_to_scalar(b"m", b"dst-a"))
