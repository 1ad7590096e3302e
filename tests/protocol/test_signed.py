"""Signed objects of protocol v2 (docs/protocol.md, "Signed objects"): framing, signatures,
cosignatures and every refusal of the strict parser."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.signed import (
    MAX_HEADER_SIZE,
    SignedObject,
    cosign,
    encode_header,
    format_time,
    parse,
    parse_framed,
    parse_time,
    sign,
)

NETWORK = "test-net"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
WITNESS = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
WITNESS_2 = Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35)))


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def fields(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "filter",
        "network_id": NETWORK,
        "issued_at": "2025-01-02T03:04:05Z",
        "count": 3,
        "sha256": "00" * 32,
        "prev_key_id": None,
    }
    base.update(extra)
    return base


def frame(header: bytes, signature: bytes = bytes(64), cosigs: bytes = b"\x00") -> bytes:
    return len(header).to_bytes(2, "big") + header + signature + cosigs


# --- time -----------------------------------------------------------------------------------


def test_format_time_writes_utc_to_the_second() -> None:
    when = dt.datetime(2025, 1, 2, 4, 4, 5, 999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_time(when) == "2025-01-02T03:04:05Z"


def test_format_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(InvalidInputError):
        format_time(dt.datetime(2025, 1, 2))


def test_parse_time_round_trips_to_an_aware_utc_datetime() -> None:
    parsed = parse_time("2025-01-02T03:04:05Z")
    assert parsed == dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert parsed.utcoffset() == dt.timedelta(0)
    assert format_time(parsed) == "2025-01-02T03:04:05Z"


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-02T03:04:05+00:00",
        "2025-01-02T03:04:05.000Z",
        "2025-01-02t03:04:05z",
        "2025-01-02 03:04:05Z",
        "2025-02-30T03:04:05Z",
        "2025-01-02T25:04:05Z",
        "",
    ],
)
def test_parse_time_refuses_other_spellings_and_impossible_dates(text: str) -> None:
    with pytest.raises(DeserializeError):
        parse_time(text)


# --- headers --------------------------------------------------------------------------------


def test_encode_header_is_sorted_compact_ascii_json() -> None:
    header = encode_header({"b": 1, "a": "x", "c": None, "d": True})
    assert header == b'{"a":"x","b":1,"c":null,"d":true}'


def test_encode_header_refuses_floats() -> None:
    with pytest.raises(InvalidInputError):
        encode_header(fields(count=1.0))


def test_encode_header_refuses_non_ascii() -> None:
    with pytest.raises(InvalidInputError):
        encode_header(fields(network_id="réseau"))


def test_encode_header_refuses_more_than_4096_bytes() -> None:
    base = len(encode_header(fields(pad="")))
    assert len(encode_header(fields(pad="x" * (MAX_HEADER_SIZE - base)))) == MAX_HEADER_SIZE
    with pytest.raises(InvalidInputError):
        encode_header(fields(pad="x" * (MAX_HEADER_SIZE - base + 1)))


def test_encode_header_refuses_unsafe_integers_and_odd_values() -> None:
    encode_header(fields(count=2**53 - 1))
    with pytest.raises(InvalidInputError):
        encode_header(fields(count=2**53))
    with pytest.raises(InvalidInputError):
        encode_header(fields(count=b"bytes"))
    with pytest.raises(InvalidInputError):
        encode_header({1: "x"})  # type: ignore[dict-item]


# --- sign, verify, round trip ---------------------------------------------------------------


def test_signed_object_round_trips_through_its_framing() -> None:
    obj = sign(KEY, fields())
    assert parse(obj.framed()) == obj
    assert obj.fields["count"] == 3
    assert obj.type == "filter"
    obj.verify(raw(KEY), network_id=NETWORK, type="filter")


def test_signed_objects_are_hashable_and_read_only() -> None:
    obj = sign(KEY, fields())
    assert len({obj, parse(obj.framed())}) == 1
    with pytest.raises(TypeError):
        obj.fields["count"] = 4  # type: ignore[index]


def test_signature_is_over_the_prefixed_type_and_header() -> None:
    obj = sign(KEY, fields())
    KEY.public_key().verify(obj.signature, b"refcheck/v2/filter\x00" + obj.header)


def test_framing_layout_is_length_header_signature_count_cosignatures() -> None:
    obj = cosign(WITNESS, sign(KEY, fields()))
    data = obj.framed()
    n = len(obj.header)
    assert data[:2] == n.to_bytes(2, "big")
    assert data[2 : 2 + n] == obj.header
    assert data[2 + n : 66 + n] == obj.signature
    assert data[66 + n] == 1
    assert data[67 + n : 99 + n] == raw(WITNESS)
    assert len(data) == 2 + n + 64 + 1 + 96


def test_parse_framed_returns_the_offset_after_the_object() -> None:
    first = sign(KEY, fields()).framed()
    second = cosign(WITNESS, sign(KEY, fields(count=4))).framed()
    data = b"RCF2" + first + second + b"tail"
    obj, offset = parse_framed(data, 4)
    assert offset == 4 + len(first)
    obj2, offset2 = parse_framed(data, offset)
    assert obj2.fields["count"] == 4
    assert data[offset2:] == b"tail"


def test_parse_refuses_trailing_bytes() -> None:
    with pytest.raises(DeserializeError):
        parse(sign(KEY, fields()).framed() + b"\x00")


def test_verify_refuses_another_signer() -> None:
    obj = sign(KEY, fields())
    with pytest.raises(VerifyError):
        obj.verify(raw(OTHER_KEY), network_id=NETWORK, type="filter")


def test_verify_refuses_a_tampered_header_even_with_a_valid_structure() -> None:
    obj = sign(KEY, fields())
    tampered = obj.header.replace(b'"count":3', b'"count":4')
    forged = SignedObject("filter", tampered, json.loads(tampered), obj.signature)
    with pytest.raises(VerifyError):
        parse(forged.framed()).verify(raw(KEY), network_id=NETWORK, type="filter")


def test_verify_refuses_a_flipped_signature_bit() -> None:
    obj = sign(KEY, fields())
    bad = bytes([obj.signature[0] ^ 1]) + obj.signature[1:]
    forged = SignedObject(obj.type, obj.header, obj.fields, bad)
    with pytest.raises(VerifyError):
        forged.verify(raw(KEY), network_id=NETWORK, type="filter")


def test_verify_refuses_the_wrong_type() -> None:
    obj = sign(KEY, fields(type="oprf-key"))
    obj.verify(raw(KEY), network_id=NETWORK, type="oprf-key")
    with pytest.raises(VerifyError):
        obj.verify(raw(KEY), network_id=NETWORK, type="filter")


def test_a_signature_made_for_one_type_does_not_verify_as_another() -> None:
    # Same header bytes, signature moved to an object claiming another type: refused, because the
    # type is in the signed message.
    obj = sign(KEY, fields(type="filter-delta"))
    header = obj.header.replace(b'"filter-delta"', b'"filter"')
    moved = SignedObject("filter", header, json.loads(header), obj.signature)
    with pytest.raises(VerifyError):
        moved.verify(raw(KEY), network_id=NETWORK, type="filter")


def test_verify_refuses_another_network() -> None:
    obj = sign(KEY, fields(network_id="other-net"))
    with pytest.raises(VerifyError):
        obj.verify(raw(KEY), network_id=NETWORK, type="filter")


def test_verify_refuses_a_public_key_of_the_wrong_length() -> None:
    with pytest.raises(InvalidInputError):
        sign(KEY, fields()).verify(raw(KEY)[:31], network_id=NETWORK, type="filter")


# --- cosignatures ---------------------------------------------------------------------------


def test_required_witnesses_cosignatures_verify() -> None:
    obj = cosign(WITNESS_2, cosign(WITNESS, sign(KEY, fields())))
    parsed = parse(obj.framed())
    parsed.verify(
        raw(KEY), network_id=NETWORK, type="filter", witnesses=[raw(WITNESS), raw(WITNESS_2)]
    )
    WITNESS.public_key().verify(
        obj.cosignatures[0][1], b"refcheck/v2/cosign/filter\x00" + obj.header
    )


def test_verify_refuses_a_missing_required_cosignature() -> None:
    obj = cosign(WITNESS, sign(KEY, fields()))
    with pytest.raises(VerifyError):
        obj.verify(raw(KEY), network_id=NETWORK, type="filter", witnesses=[raw(WITNESS_2)])


def test_verify_refuses_an_invalid_cosignature() -> None:
    obj = cosign(WITNESS, sign(KEY, fields()))
    key, sig = obj.cosignatures[0]
    bad = SignedObject(obj.type, obj.header, obj.fields, obj.signature, ((key, sig[::-1]),))
    with pytest.raises(VerifyError):
        bad.verify(raw(KEY), network_id=NETWORK, type="filter", witnesses=[raw(WITNESS)])


def test_a_plain_signature_is_not_a_cosignature() -> None:
    # The witness's key signing the ordinary message must not count as its cosignature.
    obj = sign(KEY, fields())
    plain = sign(WITNESS, fields()).signature
    bad = SignedObject(obj.type, obj.header, obj.fields, obj.signature, ((raw(WITNESS), plain),))
    with pytest.raises(VerifyError):
        bad.verify(raw(KEY), network_id=NETWORK, type="filter", witnesses=[raw(WITNESS)])


def test_cosignatures_of_unrequired_witnesses_are_ignored() -> None:
    obj = sign(KEY, fields())
    key, sig = cosign(WITNESS, obj).cosignatures[0]
    junk = SignedObject(obj.type, obj.header, obj.fields, obj.signature, ((key, sig[::-1]),))
    junk.verify(raw(KEY), network_id=NETWORK, type="filter")


def test_a_witness_cannot_cosign_twice() -> None:
    obj = cosign(WITNESS, sign(KEY, fields()))
    with pytest.raises(InvalidInputError):
        cosign(WITNESS, obj)
    data = obj.framed()
    doubled = data[:-97] + b"\x02" + data[-96:] + data[-96:]
    with pytest.raises(DeserializeError):
        parse(doubled)


# --- sign's refusals ------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["type", "network_id", "issued_at"])
def test_sign_needs_type_network_id_and_issued_at(missing: str) -> None:
    f = fields()
    del f[missing]
    with pytest.raises(InvalidInputError):
        sign(KEY, f)


def test_sign_refuses_an_unknown_type_and_a_badly_written_time() -> None:
    with pytest.raises(InvalidInputError):
        sign(KEY, fields(type="filtre"))
    with pytest.raises(InvalidInputError):
        sign(KEY, fields(issued_at="2025-01-02T03:04:05+00:00"))


def test_signed_object_fields_must_be_those_of_its_header() -> None:
    obj = sign(KEY, fields())
    with pytest.raises(InvalidInputError):
        SignedObject(obj.type, obj.header, fields(count=4), obj.signature)
    with pytest.raises(InvalidInputError):
        SignedObject("oprf-key", obj.header, obj.fields, obj.signature)


# --- the strict parser ----------------------------------------------------------------------


def test_parser_accepts_a_header_that_is_not_in_canonical_order() -> None:
    # The signature is over the bytes as sent; a verifier must not need our key order.
    header = b'{"type":"filter","network_id":"test-net","issued_at":"2025-01-02T03:04:05Z"}'
    signature = KEY.sign(b"refcheck/v2/filter\x00" + header)
    obj = parse(frame(header, signature))
    obj.verify(raw(KEY), network_id=NETWORK, type="filter")
    assert obj.header == header


@pytest.mark.parametrize(
    "header",
    [
        b'{"type":"filter","type":"filter","network_id":"n","issued_at":"2025-01-02T03:04:05Z"}',
        b'{"type":"filter","network_id":"n","issued_at":"2025-01-02T03:04:05Z","x":{"a":1,"a":2}}',
        b'{"type":"filter","network_id":"n","issued_at":"2025-01-02T03:04:05Z","x":1.5}',
        b'{"type":"filter","network_id":"n","issued_at":"2025-01-02T03:04:05Z","x":NaN}',
        b'{"type":"filter","network_id":"n","issued_at":"2025-01-02T03:04:05Z","x":"\xc3\xa9"}',
        b'{"type":"filter","network_id":"n","issued_at":"2025-01-02T03:04:05Z"',
        b'["type","filter"]',
        b"",
        b'{"network_id":"n","issued_at":"2025-01-02T03:04:05Z"}',
        b'{"type":"filter","issued_at":"2025-01-02T03:04:05Z"}',
        b'{"type":"filter","network_id":"n"}',
        b'{"type":1,"network_id":"n","issued_at":"2025-01-02T03:04:05Z"}',
        b'{"type":"filter","network_id":null,"issued_at":"2025-01-02T03:04:05Z"}',
        b'{"type":"filter","network_id":"n","issued_at":"2025-01-02 03:04:05"}',
        b'{"type":"fil\\u0000ter","network_id":"n","issued_at":"2025-01-02T03:04:05Z"}',
        b'{"type":"Filter","network_id":"n","issued_at":"2025-01-02T03:04:05Z"}',
    ],
    ids=[
        "duplicate-key",
        "nested-duplicate-key",
        "float",
        "nan",
        "non-ascii",
        "not-json",
        "not-an-object",
        "empty",
        "no-type",
        "no-network-id",
        "no-issued-at",
        "type-not-string",
        "network-id-null",
        "bad-time",
        "nul-in-type",
        "upper-case-type",
    ],
)
def test_parser_refuses_malformed_headers(header: bytes) -> None:
    with pytest.raises(DeserializeError):
        parse(frame(header))


def test_parser_refuses_a_header_length_above_4096_before_reading_it() -> None:
    data = (MAX_HEADER_SIZE + 1).to_bytes(2, "big") + b"{" * (MAX_HEADER_SIZE + 200)
    with pytest.raises(DeserializeError, match="longer"):
        parse(data)


def test_every_truncation_is_refused() -> None:
    data = cosign(WITNESS, sign(KEY, fields())).framed()
    for cut in range(len(data)):
        with pytest.raises(DeserializeError):
            parse(data[:cut])


def test_parse_framed_refuses_a_negative_offset() -> None:
    with pytest.raises(InvalidInputError):
        parse_framed(sign(KEY, fields()).framed(), -1)


@settings(deadline=None, max_examples=50)
@given(
    count=st.integers(min_value=0, max_value=2**53 - 1),
    network=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
def test_any_sign_parse_round_trip_verifies(count: int, network: str) -> None:
    obj = sign(KEY, fields(count=count, network_id=network))
    parsed = parse(obj.framed())
    assert parsed == obj
    parsed.verify(raw(KEY), network_id=network, type="filter")
