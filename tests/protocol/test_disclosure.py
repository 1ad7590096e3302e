"""Sealed, signed disclosure answers and applicant details (protocol/disclosure.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime

import nacl.public
import nacl.signing
import pytest

from protocol.disclosure import (
    ANSWER_PADDED_SIZE,
    SEALED_ANSWER_SIZE,
    SEALED_DETAILS_SIZE,
    Answer,
    ApplicantDetails,
    open_answer,
    open_applicant_details,
    seal_answer,
    seal_applicant_details,
)
from protocol.errors import DeserializeError, InvalidInputError, VerifyError

REQUEST = "11111111-1111-4111-8111-111111111111"
OTHER_REQUEST = "22222222-2222-4222-8222-222222222222"
HOLDER = "33333333-3333-4333-8333-333333333333"
REQUESTER = "44444444-4444-4444-8444-444444444444"
CONSENT = "55555555-5555-4555-8555-555555555555"
ENTRY = "66666666-6666-4666-8666-666666666666"


class Org:
    def __init__(self) -> None:
        self.signing = nacl.signing.SigningKey.generate()
        self.box = nacl.public.PrivateKey.generate()

    @property
    def seed(self) -> bytes:
        return bytes(self.signing)

    @property
    def verify_key(self) -> bytes:
        return bytes(self.signing.verify_key)

    @property
    def x_private(self) -> bytes:
        return bytes(self.box)

    @property
    def x_public(self) -> bytes:
        return bytes(self.box.public_key)


@pytest.fixture
def holder() -> Org:
    return Org()


@pytest.fixture
def requester() -> Org:
    return Org()


def confirmed(**overrides: object) -> Answer:
    values: dict[str, object] = {
        "request_id": REQUEST,
        "holder_org_id": HOLDER,
        "requester_org_id": REQUESTER,
        "same_person": "confirmed",
        "category": "sexual_abuse",
        "child_victim": False,
        "finding_date": date(2025, 3, 1),
        "sanction": "dismissal",
        "text": "Dismissed after a substantiated investigation. Ünïcode ok.",
        "contact": "pseah-focal@org-a.example",
    }
    values.update(overrides)
    return Answer(**values)  # type: ignore[arg-type]


def test_answer_round_trips_and_verifies(holder: Org, requester: Org) -> None:
    answer = confirmed()
    sealed = seal_answer(answer, holder.seed, requester.x_public)
    opened = open_answer(
        sealed,
        requester.x_private,
        holder.verify_key,
        REQUEST,
        expected_holder_org_id=HOLDER,
        expected_requester_org_id=REQUESTER,
    )
    assert opened == answer


def test_every_sealed_answer_has_the_same_size_whatever_the_verdict(
    holder: Org, requester: Org
) -> None:
    short = Answer(REQUEST, HOLDER, REQUESTER, "not_same_person")
    long = confirmed(text="x" * 1500)
    declined = Answer(REQUEST, HOLDER, REQUESTER, "declined", decline_reason="no legal basis")
    sizes = {len(seal_answer(a, holder.seed, requester.x_public)) for a in (short, long, declined)}
    assert sizes == {SEALED_ANSWER_SIZE}


def test_answer_signed_by_another_org_is_rejected(holder: Org, requester: Org) -> None:
    forger = Org()
    sealed = seal_answer(confirmed(), forger.seed, requester.x_public)
    with pytest.raises(VerifyError):
        open_answer(sealed, requester.x_private, holder.verify_key, REQUEST)


def test_answer_made_for_another_request_is_rejected(holder: Org, requester: Org) -> None:
    sealed = seal_answer(confirmed(request_id=OTHER_REQUEST), holder.seed, requester.x_public)
    with pytest.raises(VerifyError):
        open_answer(sealed, requester.x_private, holder.verify_key, REQUEST)


def test_answer_naming_another_requester_or_holder_is_rejected(holder: Org, requester: Org) -> None:
    sealed = seal_answer(confirmed(), holder.seed, requester.x_public)
    with pytest.raises(VerifyError):
        open_answer(
            sealed,
            requester.x_private,
            holder.verify_key,
            REQUEST,
            expected_requester_org_id=HOLDER,
        )
    with pytest.raises(VerifyError):
        open_answer(
            sealed,
            requester.x_private,
            holder.verify_key,
            REQUEST,
            expected_holder_org_id=REQUESTER,
        )


def test_answer_sealed_to_someone_else_does_not_open(holder: Org, requester: Org) -> None:
    sealed = seal_answer(confirmed(), holder.seed, Org().x_public)
    with pytest.raises(VerifyError):
        open_answer(sealed, requester.x_private, holder.verify_key, REQUEST)


def test_tampered_or_truncated_answer_is_rejected(holder: Org, requester: Org) -> None:
    sealed = bytearray(seal_answer(confirmed(), holder.seed, requester.x_public))
    sealed[100] ^= 1
    with pytest.raises(VerifyError):
        open_answer(bytes(sealed), requester.x_private, holder.verify_key, REQUEST)
    with pytest.raises(DeserializeError):
        open_answer(bytes(sealed[:-1]), requester.x_private, holder.verify_key, REQUEST)


def _seal_raw(plain: bytes, requester: Org) -> bytes:
    box = nacl.public.SealedBox(nacl.public.PublicKey(requester.x_public))
    return bytes(box.encrypt(plain))


def test_signature_does_not_cover_a_swapped_request_id(holder: Org, requester: Org) -> None:
    """A server (or anyone) who could rewrite the JSON's request id without the holder's key
    must fail the signature, not just the id comparison."""
    answer = confirmed(request_id=OTHER_REQUEST)
    canonical = answer.canonical_bytes()
    good = seal_answer(answer, holder.seed, requester.x_public)
    plain = bytes(nacl.public.SealedBox(nacl.public.PrivateKey(requester.x_private)).decrypt(good))
    swapped = canonical.replace(OTHER_REQUEST.encode(), REQUEST.encode())
    forged = plain[:64] + len(swapped).to_bytes(2, "big") + swapped
    forged += bytes(ANSWER_PADDED_SIZE - len(forged))
    with pytest.raises(VerifyError):
        open_answer(_seal_raw(forged, requester), requester.x_private, holder.verify_key, REQUEST)


def test_nonzero_padding_is_refused(holder: Org, requester: Org) -> None:
    good = seal_answer(confirmed(), holder.seed, requester.x_public)
    plain = bytearray(
        nacl.public.SealedBox(nacl.public.PrivateKey(requester.x_private)).decrypt(good)
    )
    plain[-1] = 1
    with pytest.raises(DeserializeError):
        open_answer(
            _seal_raw(bytes(plain), requester), requester.x_private, holder.verify_key, REQUEST
        )


@pytest.mark.parametrize(
    "overrides",
    [
        {"same_person": "maybe"},
        {"category": None},
        {"sanction": None},
        {"finding_date": None},
        {"category": "fraud"},
        {"sanction": "warning"},
        {"finding_date": datetime(2025, 3, 1)},
        {"decline_reason": "only for declined"},
        {"text": ""},
        {"text": "x" * 1501},
        {"contact": "c" * 201},
        {"request_id": ""},
    ],
)
def test_invalid_answers_are_refused_before_sealing(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        confirmed(**overrides)


def test_only_a_confirmation_carries_a_finding() -> None:
    with pytest.raises(InvalidInputError):
        Answer(REQUEST, HOLDER, REQUESTER, "not_same_person", category="sexual_abuse")
    with pytest.raises(InvalidInputError):
        Answer(REQUEST, HOLDER, REQUESTER, "declined")  # no reason
    declined = Answer(REQUEST, HOLDER, REQUESTER, "declined", decline_reason="under appeal")
    assert declined.to_dict()["decline_reason"] == "under appeal"


def test_answer_too_long_to_seal_is_refused(holder: Org, requester: Org) -> None:
    # 1500 four-byte characters are within the character limit but not the fixed box size.
    answer = confirmed(text="\U0001f600" * 1500)
    with pytest.raises(InvalidInputError):
        seal_answer(answer, holder.seed, requester.x_public)


def test_canonical_form_is_sorted_compact_and_omits_absent_fields() -> None:
    answer = Answer(REQUEST, HOLDER, REQUESTER, "not_same_person")
    raw = answer.canonical_bytes()
    assert (
        raw
        == json.dumps(
            {
                "holder_org_id": HOLDER,
                "request_id": REQUEST,
                "requester_org_id": REQUESTER,
                "same_person": "not_same_person",
                "v": 1,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    )
    assert Answer.from_dict(json.loads(raw)) == answer


@pytest.mark.parametrize(
    "obj",
    [
        {"v": 2, "request_id": REQUEST},
        {**confirmed().to_dict(), "extra": 1},
        {**confirmed().to_dict(), "finding_date": "yesterday"},
        {**confirmed().to_dict(), "child_victim": None},
    ],
)
def test_answer_parsing_is_strict(obj: dict[str, object]) -> None:
    with pytest.raises(DeserializeError):
        Answer.from_dict(obj)


# --- applicant details -----------------------------------------------------------------------


def details(**overrides: object) -> ApplicantDetails:
    values: dict[str, object] = {
        "consent_id": CONSENT,
        "entry_id": ENTRY,
        "requester_org_id": REQUESTER,
        "holder_org_id": HOLDER,
        "applicant": {"full_name": "Budi Santoso", "date_of_birth": "1985-02-03"},
    }
    values.update(overrides)
    return ApplicantDetails(**values)  # type: ignore[arg-type]


def test_signed_details_round_trip(holder: Org, requester: Org) -> None:
    sealed = seal_applicant_details(details(), holder.x_public, requester.seed)
    assert len(sealed) == SEALED_DETAILS_SIZE
    opened = open_applicant_details(
        sealed,
        holder.x_private,
        requester_ed25519_public=requester.verify_key,
        expected_consent_id=CONSENT,
        expected_entry_id=ENTRY,
        expected_requester_org_id=REQUESTER,
        expected_holder_org_id=HOLDER,
    )
    assert opened.signature_verified
    assert opened.details == details()


def test_unsigned_details_open_but_fail_when_a_signature_is_required(
    holder: Org, requester: Org
) -> None:
    sealed = seal_applicant_details(details(), holder.x_public)
    assert not open_applicant_details(sealed, holder.x_private).signature_verified
    with pytest.raises(VerifyError):
        open_applicant_details(
            sealed, holder.x_private, requester_ed25519_public=requester.verify_key
        )


def test_details_signed_by_another_org_are_rejected(holder: Org, requester: Org) -> None:
    sealed = seal_applicant_details(details(), holder.x_public, Org().seed)
    with pytest.raises(VerifyError):
        open_applicant_details(
            sealed, holder.x_private, requester_ed25519_public=requester.verify_key
        )


def test_details_moved_to_another_request_are_rejected(holder: Org, requester: Org) -> None:
    sealed = seal_applicant_details(details(), holder.x_public, requester.seed)
    with pytest.raises(VerifyError):
        open_applicant_details(sealed, holder.x_private, expected_entry_id=CONSENT)


@pytest.mark.parametrize(
    "applicant",
    [{}, {"shoe_size": "42"}, {"full_name": ""}, {"full_name": "x" * 301}],
)
def test_invalid_details_are_refused(applicant: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError):
        details(applicant=applicant)


def test_keys_of_the_wrong_length_are_refused(holder: Org, requester: Org) -> None:
    with pytest.raises(InvalidInputError):
        seal_answer(confirmed(), holder.seed[:31], requester.x_public)
    with pytest.raises(InvalidInputError):
        seal_answer(confirmed(), holder.seed, requester.x_public + b"\x00")


def test_answer_replace_keeps_validation() -> None:
    with pytest.raises(InvalidInputError):
        replace(confirmed(), same_person="not_same_person")
