"""`protocol.consent_details`: a consent's details sealed to the hiring organisation."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone

import nacl.public
import nacl.signing
import pytest

from protocol.consent_details import (
    PADDED_SIZE,
    SEALED_SIZE,
    ConsentDetails,
    NotSealedToThisKey,
    open_details,
    seal_details,
)
from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.messages import ConsentCreate

AT = datetime(2026, 12, 8, 9, 30, 15, 123456, tzinfo=UTC)
DETAILS = ConsentDetails(
    applicant_ref="APP-2026-0042",
    position_ref="POS-WASH-07",
    form_sha256="ab" * 32,
    self_declared_finding=False,
    purpose="recruitment",
    consented_at=AT,
)


@pytest.fixture
def keys() -> tuple[nacl.public.PrivateKey, nacl.signing.SigningKey]:
    return nacl.public.PrivateKey.generate(), nacl.signing.SigningKey.generate()


def _seal(keys, details=DETAILS, *, signed: bool = True) -> bytes:
    box, signer = keys
    seed = bytes(signer) if signed else None
    return seal_details(details, bytes(box.public_key), signing_seed=seed)


def _open(keys, sealed: bytes, **binding):
    box, signer = keys
    binding = {"purpose": "recruitment", "consented_at": AT, **binding}
    return open_details(sealed, bytes(box), bytes(signer.verify_key), **binding)


def test_sealed_details_open_signed_with_the_organisations_keys(keys) -> None:
    opened = _open(keys, _seal(keys))
    assert opened.signed and opened.details == DETAILS


def test_unsigned_details_open_as_unsigned(keys) -> None:
    opened = _open(keys, _seal(keys, signed=False))
    assert not opened.signed and opened.details == DETAILS


def test_every_blob_has_one_size_and_the_wire_takes_exactly_that() -> None:
    keys = (nacl.public.PrivateKey.generate(), nacl.signing.SigningKey.generate())
    longest = dataclasses.replace(
        DETAILS, applicant_ref="A" * 128, position_ref="P" * 128, purpose="p" + "x" * 39
    )
    shortest = dataclasses.replace(DETAILS, applicant_ref="A", position_ref="P", purpose="r")
    assert {len(_seal(keys, d)) for d in (longest, shortest, DETAILS)} == {SEALED_SIZE}
    assert SEALED_SIZE == PADDED_SIZE + 48
    pattern = ConsentCreate.model_fields["sealed_details"].metadata[0].pattern
    assert re.fullmatch(pattern, "ab" * SEALED_SIZE)
    assert not re.fullmatch(pattern, "ab" * (SEALED_SIZE - 1))


def test_a_time_in_another_zone_is_the_same_consent(keys) -> None:
    jakarta = AT.astimezone(timezone(timedelta(hours=7)))
    assert _open(keys, _seal(keys), consented_at=jakarta).details == DETAILS


def test_another_key_does_not_open_them(keys) -> None:
    other = (nacl.public.PrivateKey.generate(), keys[1])
    with pytest.raises(NotSealedToThisKey):
        _open(other, _seal(keys))


def test_details_signed_by_another_key_are_refused(keys) -> None:
    forged = _seal((keys[0], nacl.signing.SigningKey.generate()))
    with pytest.raises(VerifyError) as caught:
        _open(keys, forged)
    assert not isinstance(caught.value, NotSealedToThisKey)


@pytest.mark.parametrize(
    "binding",
    [{"purpose": "rescreening"}, {"consented_at": AT + timedelta(microseconds=1)}],
)
def test_details_of_another_consent_are_refused(keys, binding) -> None:
    with pytest.raises(VerifyError, match="another consent"):
        _open(keys, _seal(keys), **binding)


def _reseal(keys, plain: bytes) -> bytes:
    return bytes(nacl.public.SealedBox(keys[0].public_key).encrypt(plain))


def test_malformed_plaintexts_are_refused(keys) -> None:
    body = DETAILS.canonical_bytes()
    header = bytes(65) + len(body).to_bytes(2, "big")
    good = header + body + bytes(PADDED_SIZE - len(header) - len(body))
    assert _open(keys, _reseal(keys, good)).details == DETAILS
    bad = [
        good[:-1] + b"\x01",  # non-zero padding
        bytes([7]) + good[1:],  # unknown flag
        bytes(1) + b"\x01" + good[2:],  # unsigned, yet a signature
        good[:65] + (PADDED_SIZE).to_bytes(2, "big") + good[67:],  # length past the end
        good[:-1],  # short
    ]
    for plain in bad:
        with pytest.raises(DeserializeError):
            _open(keys, _reseal(keys, plain))
    with pytest.raises(DeserializeError):
        _open(keys, _seal(keys)[:-1])


def test_details_not_in_canonical_form_are_refused(keys) -> None:
    body = DETAILS.canonical_bytes().replace(b'":', b'": ')
    header = bytes(65) + len(body).to_bytes(2, "big")
    plain = header + body + bytes(PADDED_SIZE - len(header) - len(body))
    with pytest.raises(DeserializeError, match="canonical"):
        _open(keys, _reseal(keys, plain))


@pytest.mark.parametrize(
    "change",
    [
        {"applicant_ref": "Siti Rahmawati"},
        {"applicant_ref": "siti@example.org"},
        {"position_ref": ""},
        {"form_sha256": "AB" * 32},
        {"self_declared_finding": 0},
        {"purpose": "Recruitment"},
        {"consented_at": AT.replace(tzinfo=None)},
    ],
)
def test_details_outside_the_rules_cannot_be_made(change) -> None:
    with pytest.raises(InvalidInputError) as caught:
        dataclasses.replace(DETAILS, **change)
    for value in change.values():
        if isinstance(value, str) and value:
            assert value not in str(caught.value)
