"""The `sealed_keys` layout of a v2 registration (docs/protocol.md, "Registration", step 2)."""

from __future__ import annotations

import hashlib
from typing import Any

import nacl.public
import pytest

from protocol.codes import KINDS_BY_CODE
from protocol.encoding import canonical_json
from protocol.entry import hash_to_group
from protocol.errors import DeserializeError, InvalidInputError
from protocol.hazmat.ristretto255 import IDENTITY
from protocol.identity.keys import Strength
from protocol.sealed_keys import (
    RegisteredKey,
    decode,
    encode,
    metadata_sha256,
    open_sealed,
    plaintext_size,
    seal,
)

METADATA: dict[str, Any] = {
    "category": "sexual_exploitation",
    "child_victim": False,
    "finding": "substantiated",
    "sanction": "dismissal",
    "finding_date": "2024-05-01",
    "legal_basis": "consent",
    "retention_until": "2034-05-01",
    "mou_reference": "MOU-2024-07",
    "subject_notified_on": "2024-05-10",
    "key_id": "k1",
}
HASH = metadata_sha256(METADATA)
E1 = hash_to_group(b"refcheck/v1/email/a@example.org")
E2 = hash_to_group(b"refcheck/v1/name_dob/2025-1/1990-01-02/ani siti")
E3 = hash_to_group(b"refcheck/v1/name_dob_variant/2025-1/join/1990-01-02/anisiti")
KEYS = [
    RegisteredKey(E1, "email", Strength.STRONG),
    RegisteredKey(E2, "name_dob", Strength.EXACT),
    RegisteredKey(E3, "name_dob_variant", Strength.VARIANT),
]
KPC = 5


def slot_offset(i: int) -> int:
    return 33 + 34 * i


def replace(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


# --- metadata_sha256 ------------------------------------------------------------------------


def test_metadata_hash_is_sha256_of_rfc8785_json() -> None:
    assert HASH == hashlib.sha256(canonical_json(METADATA)).digest()
    reordered = dict(reversed(list(METADATA.items())))
    assert metadata_sha256(reordered) == HASH
    assert canonical_json(METADATA).startswith(b'{"category":"sexual_exploitation","child_')


def test_metadata_hash_refuses_a_body_with_sealed_keys_and_floats() -> None:
    with pytest.raises(InvalidInputError):
        metadata_sha256({**METADATA, "sealed_keys": "00"})
    with pytest.raises(InvalidInputError):
        metadata_sha256({**METADATA, "score": 0.5})


# --- encode / decode ------------------------------------------------------------------------


def test_layout_is_hash_count_then_fixed_slots() -> None:
    data = encode(HASH, KEYS, KPC)
    assert len(data) == plaintext_size(KPC) == 32 + 1 + 34 * KPC
    assert data[:32] == HASH
    assert data[32] == 3
    assert data[slot_offset(0) : slot_offset(1)] == E1 + b"\x03\x01"
    assert data[slot_offset(1) : slot_offset(2)] == E2 + b"\x05\x02"
    assert data[slot_offset(2) : slot_offset(3)] == E3 + b"\x06\x03"
    assert data[slot_offset(3) :] == bytes(34 * 2)


def test_encode_decode_round_trip() -> None:
    assert decode(encode(HASH, KEYS, KPC), KPC) == (HASH, KEYS)
    assert decode(encode(HASH, KEYS, 3), 3) == (HASH, KEYS)
    assert decode(encode(HASH, KEYS[:1], 255), 255) == (HASH, KEYS[:1])


def test_registered_key_takes_strength_names() -> None:
    key = RegisteredKey(E1, "email", "strong")  # type: ignore[arg-type]
    assert key.strength is Strength.STRONG


@pytest.mark.parametrize(
    ("element", "kind", "strength"),
    [(E1[:31], "email", "strong"), (E1, "padding", "variant"), (E1, "email", "weak")],
)
def test_registered_key_refuses_bad_fields(element: bytes, kind: str, strength: str) -> None:
    with pytest.raises(InvalidInputError):
        RegisteredKey(element, kind, strength)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metadata_hash", "keys", "kpc"),
    [
        (HASH, [], KPC),
        (HASH, KEYS, 2),
        (HASH, KEYS, 256),
        (HASH, KEYS, 0),
        (HASH[:31], KEYS, KPC),
        (HASH, [KEYS[0], KEYS[1], KEYS[0]], KPC),
        (HASH, [RegisteredKey(IDENTITY, "email", Strength.STRONG)], KPC),
        (HASH, [RegisteredKey(b"\xff" * 32, "email", Strength.STRONG)], KPC),
    ],
    ids=[
        "no-keys",
        "more-than-kpc",
        "kpc-over-255",
        "kpc-zero",
        "short-hash",
        "repeat",
        "identity",
        "invalid",
    ],
)
def test_encode_refuses(metadata_hash: bytes, keys: list[RegisteredKey], kpc: int) -> None:
    with pytest.raises(InvalidInputError):
        encode(metadata_hash, keys, kpc)


def test_encode_names_the_slot_but_never_the_element() -> None:
    with pytest.raises(InvalidInputError, match="slot 2") as info:
        encode(HASH, [KEYS[0], KEYS[1], KEYS[0]], KPC)
    assert E1.hex() not in str(info.value)


def test_decode_refuses_wrong_lengths() -> None:
    data = encode(HASH, KEYS, KPC)
    for bad in (data[:-1], data + b"\x00"):
        with pytest.raises(DeserializeError):
            decode(bad, KPC)
    with pytest.raises(DeserializeError):
        decode(data, KPC + 1)


@pytest.mark.parametrize("n", [0, KPC + 1, 255])
def test_decode_refuses_a_count_outside_1_to_keys_per_check(n: int) -> None:
    data = encode(HASH, KEYS, KPC)
    with pytest.raises(DeserializeError):
        decode(replace(data, 32, bytes([n])), KPC)


def test_decode_refuses_non_zero_unused_slots() -> None:
    data = encode(HASH, KEYS, KPC)
    for offset in (slot_offset(3), slot_offset(4) + 33):
        with pytest.raises(DeserializeError) as info:
            decode(replace(data, offset, b"\x01"), KPC)
        assert info.value.index in (3, 4)


def test_decode_refuses_a_real_key_hidden_in_an_unused_slot() -> None:
    data = encode(HASH, KEYS, KPC)
    extra = hash_to_group(b"x") + b"\x03\x01"
    with pytest.raises(DeserializeError, match="slot 3") as info:
        decode(replace(data, slot_offset(3), extra), KPC)
    assert info.value.index == 3


@pytest.mark.parametrize(
    ("slot_bytes", "what"),
    [
        (IDENTITY + b"\x03\x01", "element"),
        (b"\xff" * 32 + b"\x03\x01", "element"),
        (E2[:31] + bytes([E2[31] | 0x80]) + b"\x03\x01", "element"),
        (E2 + b"\x00\x01", "kind"),
        (E2 + bytes([max(KINDS_BY_CODE) + 1, 1]), "kind"),
        (E2 + b"\x03\x00", "strength"),
        (E2 + b"\x03\x04", "strength"),
        (E1 + b"\x03\x01", "repeats"),
    ],
    ids=[
        "identity",
        "invalid",
        "non-canonical",
        "unused-kind",
        "unknown-kind",
        "unused-strength",
        "unknown-strength",
        "repeat",
    ],
)
def test_decode_refuses_bad_real_slots_naming_the_slot(slot_bytes: bytes, what: str) -> None:
    data = replace(encode(HASH, KEYS, KPC), slot_offset(1), slot_bytes)
    with pytest.raises(DeserializeError, match=what) as info:
        decode(data, KPC)
    assert info.value.index == 1
    assert slot_bytes[:32].hex() not in str(info.value)


def test_decode_refuses_keys_per_check_out_of_range() -> None:
    for bad in (0, 256):
        with pytest.raises(InvalidInputError):
            decode(b"", bad)


# --- sealing --------------------------------------------------------------------------------


def test_sealed_keys_open_with_the_registration_key() -> None:
    private = nacl.public.PrivateKey(bytes(range(32)))
    plaintext = encode(HASH, KEYS, KPC)
    sealed = seal(bytes(private.public_key), plaintext)
    assert len(sealed) == len(plaintext) + 48  # ephemeral key and MAC
    assert open_sealed(bytes(private), sealed) == plaintext
    assert seal(bytes(private.public_key), plaintext) != sealed


def test_sealed_keys_do_not_open_with_another_key_or_when_altered() -> None:
    private = nacl.public.PrivateKey(bytes(range(32)))
    other = nacl.public.PrivateKey(bytes(range(1, 33)))
    sealed = seal(bytes(private.public_key), encode(HASH, KEYS, KPC))
    with pytest.raises(DeserializeError):
        open_sealed(bytes(other), sealed)
    with pytest.raises(DeserializeError):
        open_sealed(bytes(private), sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(DeserializeError):
        open_sealed(bytes(private), sealed[:40])
    with pytest.raises(DeserializeError):
        open_sealed(bytes(private), b"")


def test_seal_refuses_keys_of_the_wrong_length() -> None:
    with pytest.raises(InvalidInputError):
        seal(bytes(31), b"x")
    with pytest.raises(InvalidInputError):
        open_sealed(bytes(33), b"x" * 60)
