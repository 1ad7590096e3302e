"""The registry filter (docs/protocol.md, "The registry filter"): the Rice parameter, the
Golomb–Rice codec and its refusals, the full and delta bodies, and applying a delta."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.filter import (
    DELTA_MAGIC,
    FULL_MAGIC,
    PREFIX_BITS,
    apply_delta,
    decode_set,
    delta_body,
    encode_set,
    full_body,
    parse_delta,
    parse_full,
    rice_parameter,
    set_sha256,
)
from protocol.signed import SignedObject, sign

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
TOP = 2**48


def bitstring(data: bytes) -> str:
    return "".join(f"{b:08b}" for b in data)


def from_bits(bits: str) -> bytes:
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def reference_decode(data: bytes, count: int, p: int) -> list[int]:
    """A slow, obviously correct decoder to compare the fast one with."""
    bits = bitstring(data)
    pos, last, out = 0, 0, []
    for _ in range(count):
        q = 0
        while bits[pos] == "1":
            q += 1
            pos += 1
        pos += 1
        low = int(bits[pos : pos + p], 2) if p else 0
        pos += p
        last += (q << p) | low
        out.append(last)
    assert set(bits[pos:]) <= {"0"} and len(bits) - pos < 8
    return out


def filter_header(values: list[int], /, **extra: Any) -> SignedObject:
    count = len(values)
    fields: dict[str, Any] = {
        "type": "filter",
        "network_id": "test-net",
        "issued_at": "2025-01-02T03:04:05Z",
        "expires_at": "2025-01-02T05:04:05Z",
        "key_id": "k1",
        "key_seq": 1,
        "revision": 7,
        "count": count,
        "p": rice_parameter(count),
        "sha256": set_sha256(values).hex(),
        "prev_sha256": "0" * 64,
    }
    fields.update(extra)
    return sign(KEY, fields)


def delta_header(added: list[int], removed: list[int], /, **extra: Any) -> SignedObject:
    fields: dict[str, Any] = {
        "type": "filter-delta",
        "network_id": "test-net",
        "issued_at": "2025-01-02T03:04:05Z",
        "expires_at": "2025-01-02T05:04:05Z",
        "key_id": "k1",
        "key_seq": 1,
        "revision": 8,
        "since_sha256": "11" * 32,
        "added": len(added),
        "removed": len(removed),
        "count": 0,
        "sha256": "22" * 32,
    }
    fields.update(extra)
    return sign(KEY, fields)


# --- rice_parameter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "p"),
    [(0, 48), (1, 48), (2, 47), (3, 46), (4, 46), (5, 45), (2**10, 38), (2**10 + 1, 37)]
    + [(10**6, 28), (2**48, 0)],
)
def test_rice_parameter_is_the_exact_integer_formula(count: int, p: int) -> None:
    assert rice_parameter(count) == p


def test_rice_parameter_matches_the_real_formula_around_powers_of_two() -> None:
    for k in range(1, 47):
        for count in (2**k - 1, 2**k, 2**k + 1):
            expected = min(48, math.floor(math.log2(TOP / max(count, 1))))
            # The float formula is exact here only because these values are tiny rationals;
            # the assertion pins the integer one to the written definition.
            assert rice_parameter(count) == expected


@pytest.mark.parametrize("bad", [-1, 2**48 + 1, True, 1.0])
def test_rice_parameter_refuses_counts_out_of_range(bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        rice_parameter(bad)


# --- the codec ------------------------------------------------------------------------------


def test_encoding_of_a_small_set_is_the_bip158_bit_layout() -> None:
    # p = 2: 5 -> d=5 q=1 low=01 -> "1 0 01"; 6 -> d=1 -> "0 01"; 13 -> d=7 q=1 low=11 -> "1 0 11"
    data = encode_set([5, 6, 13], 2)
    assert bitstring(data) == "1001" + "001" + "1011" + "00000"
    assert decode_set(data, 3, 2) == [5, 6, 13]


def test_empty_set_encodes_to_no_bytes() -> None:
    assert encode_set([], 48) == b""
    assert decode_set(b"", 0, 48) == []


def test_extreme_values_round_trip() -> None:
    for p in (0, 1, 20, 40, 47, 48):
        values = [0, 1, TOP - 1] if p >= 40 else [0, 1, 300]
        assert decode_set(encode_set(values, p), len(values), p) == values


@settings(deadline=None, max_examples=200)
@given(
    values=st.sets(st.integers(min_value=0, max_value=TOP - 1), max_size=60),
    p_shift=st.integers(min_value=-3, max_value=3),
)
def test_golomb_rice_round_trip(values: set[int], p_shift: int) -> None:
    ordered = sorted(values)
    p = min(48, max(20, rice_parameter(len(ordered)) + p_shift))
    data = encode_set(ordered, p)
    assert decode_set(data, len(ordered), p) == ordered
    assert reference_decode(data, len(ordered), p) == ordered


@settings(deadline=None, max_examples=50)
@given(values=st.sets(st.integers(min_value=0, max_value=5000), max_size=40))
def test_golomb_rice_round_trip_with_small_p(values: set[int]) -> None:
    ordered = sorted(values)
    for p in (0, 1, 4):
        assert decode_set(encode_set(ordered, p), len(ordered), p) == ordered


def test_decoding_crosses_chunk_boundaries() -> None:
    rng = random.Random(5)
    values = sorted(rng.sample(range(TOP), 200_000))
    p = rice_parameter(len(values))
    data = encode_set(values, p)
    assert len(data) > 2 * (1 << 17)  # more than two of the decoder's chunks
    assert decode_set(data, len(values), p) == values


def test_a_unary_run_longer_than_a_chunk_decodes() -> None:
    # p = 0 and a difference of 2^21: one run of more than two million one-bits.
    values = [3, 3 + 2**21]
    assert decode_set(encode_set(values, 0), 2, 0) == values


@pytest.mark.parametrize("p", [0, 28])
def test_a_long_run_of_one_bits_is_refused_in_one_pass(p: int) -> None:
    # Two million one-bits: a decoder that backtracks from every position would not finish.
    with pytest.raises(DeserializeError, match="fewer"):
        decode_set(b"\xff" * (1 << 18), 2, p)


def test_ten_thousand_random_values_take_under_4_6_bytes_each() -> None:
    rng = random.Random(1)
    values = sorted(rng.sample(range(TOP), 10_000))
    data = encode_set(values, rice_parameter(len(values)))
    assert len(data) / len(values) < 4.6


def test_encode_refuses_unsorted_repeated_and_out_of_range_values() -> None:
    for bad in ([2, 1], [1, 1], [-1], [TOP], [True], [1.0]):
        with pytest.raises(InvalidInputError):
            encode_set(bad, 10)  # type: ignore[arg-type]


def test_encode_refuses_a_p_out_of_range_and_absurdly_long_output() -> None:
    for p in (-1, 49):
        with pytest.raises(InvalidInputError):
            encode_set([1], p)
    with pytest.raises(InvalidInputError):
        encode_set([TOP - 1], 0)


def test_decode_refuses_a_value_at_or_above_2_48() -> None:
    # p = 48, q = 1: d = 2^48 + low.
    data = from_bits("1" + "0" + "0" * 48)
    assert reference_decode(data, 1, 48) == [TOP]
    with pytest.raises(DeserializeError, match="2\\^48"):
        decode_set(data, 1, 48)


def test_decode_refuses_more_values_than_count() -> None:
    data = encode_set([1, 2, 3], 4)
    assert decode_set(data, 3, 4) == [1, 2, 3]
    with pytest.raises(DeserializeError):
        decode_set(data, 2, 4)


def test_decode_refuses_fewer_values_than_count() -> None:
    data = encode_set([1, 2, 3], 4)
    with pytest.raises(DeserializeError):
        decode_set(data, 4, 4)
    with pytest.raises(DeserializeError):
        decode_set(data[:-1], 3, 4)


def test_decode_refuses_a_count_the_data_cannot_hold_before_scanning() -> None:
    with pytest.raises(DeserializeError, match="shorter"):
        decode_set(b"\x00", 9, 0)


def test_decode_refuses_non_zero_pad_bits() -> None:
    data = encode_set([1, 2, 3], 4)  # 15 bits, one pad bit
    assert data[-1] & 1 == 0
    with pytest.raises(DeserializeError, match="padding"):
        decode_set(data[:-1] + bytes([data[-1] | 1]), 3, 4)


def test_decode_refuses_a_whole_byte_of_padding() -> None:
    data = encode_set([1, 2, 3], 4)
    with pytest.raises(DeserializeError):
        decode_set(data + b"\x00", 3, 4)


def test_decode_refuses_a_repeated_value() -> None:
    # p = 4: 3 -> "0 0011", then a zero difference "0 0000".
    data = from_bits("00011" + "00000")
    assert reference_decode(data, 2, 4) == [3, 3]
    with pytest.raises(DeserializeError, match="repeats"):
        decode_set(data, 2, 4)


def test_decode_accepts_zero_as_the_first_value() -> None:
    assert decode_set(from_bits("00000" + "00001"), 2, 4) == [0, 1]


def test_decode_refuses_a_repeat_in_a_later_chunk() -> None:
    # p = 0, difference 1 is "10": 700,000 of them (two chunks), then a zero difference.
    data = from_bits("10" * 700_000 + "0" + "10" * 99_999)
    assert len(data) > 1 << 17
    with pytest.raises(DeserializeError, match="repeats"):
        decode_set(data, 800_000, 0)


def test_decode_refuses_bad_arguments() -> None:
    for count, p in ((-1, 4), (True, 4), (1, -1), (1, 49)):
        with pytest.raises(InvalidInputError):
            decode_set(b"\x00", count, p)


# --- set_sha256 -----------------------------------------------------------------------------


def test_set_sha256_is_over_sorted_distinct_six_byte_values() -> None:
    import hashlib

    expected = hashlib.sha256(bytes.fromhex("0000000000010000000000ff")).digest()
    assert set_sha256([255, 1, 255]) == expected
    assert set_sha256([]) == hashlib.sha256(b"").digest()
    with pytest.raises(InvalidInputError):
        set_sha256([TOP])


# --- full bodies ----------------------------------------------------------------------------


def test_full_body_round_trips() -> None:
    values = sorted(random.Random(2).sample(range(TOP), 1000))
    header = filter_header(values)
    body = full_body(header, values)
    assert body.startswith(FULL_MAGIC + header.framed())
    parsed, decoded = parse_full(body)
    assert parsed == header
    assert decoded == values


def test_full_body_of_an_empty_filter() -> None:
    header = filter_header([])
    assert parse_full(full_body(header, [])) == (header, [])


def test_full_body_refuses_values_that_do_not_match_the_header() -> None:
    values = [1, 2, 3]
    header = filter_header(values)
    with pytest.raises(InvalidInputError):
        full_body(header, [1, 2, 4])
    with pytest.raises(InvalidInputError):
        full_body(header, [1, 2])
    with pytest.raises(InvalidInputError):
        full_body(delta_header([], []), values)


def test_parse_full_refuses_the_wrong_magic() -> None:
    values = [1, 2, 3]
    body = full_body(filter_header(values), values)
    with pytest.raises(DeserializeError):
        parse_full(DELTA_MAGIC + body[4:])


def test_parse_full_refuses_a_delta_header() -> None:
    header = delta_header([], [])
    with pytest.raises(DeserializeError, match="filter header"):
        parse_full(FULL_MAGIC + header.framed())


def test_parse_full_refuses_values_other_than_the_signed_ones() -> None:
    values = [1, 2, 3]
    header = filter_header(values, sha256=set_sha256([1, 2, 4]).hex())
    body = FULL_MAGIC + header.framed() + encode_set(values, header.fields["p"])
    with pytest.raises(VerifyError):
        parse_full(body)


def test_parse_full_refuses_a_p_other_than_the_count_implies() -> None:
    values = [1, 2, 3]
    header = filter_header(values, p=10)
    body = FULL_MAGIC + header.framed() + encode_set(values, 10)
    with pytest.raises(DeserializeError, match="p is not"):
        parse_full(body)


@pytest.mark.parametrize(
    "extra",
    [{"count": -1}, {"count": "3"}, {"count": True}, {"p": None}, {"sha256": "AB" * 32}]
    + [{"sha256": "ab" * 31}],
)
def test_parse_full_refuses_malformed_header_numbers(extra: dict[str, Any]) -> None:
    header = filter_header([1, 2, 3], **extra)
    with pytest.raises(DeserializeError):
        parse_full(FULL_MAGIC + header.framed() + encode_set([1, 2, 3], 46))


def test_parse_full_refuses_a_count_other_than_the_bodys() -> None:
    values = [1, 2, 3]
    header = filter_header(values, count=4, p=rice_parameter(4))
    with pytest.raises(DeserializeError):
        parse_full(FULL_MAGIC + header.framed() + encode_set(values, rice_parameter(4)))


# --- delta bodies ---------------------------------------------------------------------------


def test_delta_body_round_trips() -> None:
    added, removed = [5, TOP - 1], [1, 2, 3]
    header = delta_header(added, removed)
    body = delta_body(header, added, removed)
    assert body == (
        DELTA_MAGIC + header.framed() + b"".join(v.to_bytes(6, "big") for v in added + removed)
    )
    assert parse_delta(body) == (header, added, removed)


def test_delta_body_refuses_lists_that_do_not_match_the_header() -> None:
    header = delta_header([5], [])
    with pytest.raises(InvalidInputError):
        delta_body(header, [5, 6], [])
    with pytest.raises(InvalidInputError):
        delta_body(header, [5], [1])
    with pytest.raises(InvalidInputError):
        delta_body(filter_header([]), [5], [])


def test_delta_body_refuses_unsorted_or_overlapping_lists() -> None:
    with pytest.raises(InvalidInputError):
        delta_body(delta_header([6, 5], []), [6, 5], [])
    with pytest.raises(InvalidInputError):
        delta_body(delta_header([5], [5]), [5], [5])


def test_parse_delta_refuses_wrong_magic_and_type() -> None:
    header = delta_header([], [])
    with pytest.raises(DeserializeError):
        parse_delta(FULL_MAGIC + header.framed())
    with pytest.raises(DeserializeError):
        parse_delta(DELTA_MAGIC + filter_header([]).framed())


def test_parse_delta_refuses_lengths_other_than_the_headers() -> None:
    header = delta_header([5], [1])
    body = delta_body(header, [5], [1])
    with pytest.raises(DeserializeError):
        parse_delta(body[:-1])
    with pytest.raises(DeserializeError):
        parse_delta(body + bytes(6))


def test_parse_delta_refuses_unsorted_repeated_and_overlapping_lists() -> None:
    for added, removed in (([6, 5], []), ([5, 5], []), ([], [2, 1]), ([5], [5])):
        header = delta_header(added, removed)
        body = (
            DELTA_MAGIC + header.framed() + b"".join(v.to_bytes(6, "big") for v in added + removed)
        )
        with pytest.raises(DeserializeError):
            parse_delta(body)


@pytest.mark.parametrize("extra", [{"added": -1}, {"removed": "0"}, {"added": None}])
def test_parse_delta_refuses_malformed_header_numbers(extra: dict[str, Any]) -> None:
    with pytest.raises(DeserializeError):
        parse_delta(DELTA_MAGIC + delta_header([], [], **extra).framed())


# --- apply_delta ----------------------------------------------------------------------------


def test_apply_delta_adds_and_removes() -> None:
    assert apply_delta([1, 3, 5], [2, 6], [3]) == [1, 2, 5, 6]
    assert apply_delta([], [], []) == []


def test_apply_delta_refuses_adding_a_present_value() -> None:
    with pytest.raises(InvalidInputError, match="already present"):
        apply_delta([1, 3], [3], [])


def test_apply_delta_refuses_removing_an_absent_value() -> None:
    with pytest.raises(InvalidInputError, match="not present"):
        apply_delta([1, 3], [], [2])


def test_apply_delta_refuses_repeats() -> None:
    with pytest.raises(InvalidInputError):
        apply_delta([1, 1], [], [])
    with pytest.raises(InvalidInputError):
        apply_delta([1], [2, 2], [])


def test_a_delta_then_its_sha256_reaches_the_new_filter() -> None:
    old = [10, 20, 30]
    new = [10, 25, 30, 40]
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    header = delta_header(added, removed, count=len(new), sha256=set_sha256(new).hex())
    _, a, r = parse_delta(delta_body(header, added, removed))
    result = apply_delta(old, a, r)
    assert result == new
    assert set_sha256(result).hex() == header.fields["sha256"]


def test_prefix_bits_is_48() -> None:
    assert PREFIX_BITS == 48
