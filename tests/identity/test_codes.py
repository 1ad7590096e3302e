"""Every kind of key `derive_keys` emits has a one-byte code in `protocol.codes`: a key of a kind
without a code could not be registered (its `sealed_keys` slot has no byte for it)."""

from __future__ import annotations

from collections.abc import Iterable

from protocol.codes import KIND_CODES, KINDS_BY_CODE
from protocol.identity import KINDS, derive_keys

#: Records that together make every kind of key.
RECORDS: list[dict[str, object]] = [
    {
        "full_name": "Muhammad Rizki Pratama",
        "date_of_birth": "1990-03-07",  # day and month can be swapped
        "nationality": "ID",
        "national_id": "3201234567890001",
        "passport": "B2976225",
        "email": "rizki@example.org",
        "phone": "081234567890",
    },
    {"full_name": "M. Rizki", "date_of_birth": "1990-03-17", "nationality": "ID"},
    {"full_name": "Ratna", "date_of_birth": "1990-05-05", "nationality": "ID"},
]


def kinds_without_code(kinds: Iterable[str]) -> list[str]:
    return sorted(set(kinds) - set(KIND_CODES))


def test_the_records_make_every_listed_kind_and_no_other() -> None:
    assert {k.kind for record in RECORDS for k in derive_keys(record)} == set(KINDS)


def test_every_kind_derive_keys_emits_has_a_code() -> None:
    assert kinds_without_code(KINDS) == []


def test_a_kind_without_a_code_is_found() -> None:
    assert kinds_without_code([*KINDS, "name_dob_new_form"]) == ["name_dob_new_form"]


def test_the_round_2_kinds_take_the_next_free_codes_and_no_code_is_shared() -> None:
    assert [KIND_CODES[k] for k in KINDS] == list(range(0x01, 0x0A))
    assert KIND_CODES["name_dob_first_last"] == 0x07
    assert KIND_CODES["name_dob_abbrev"] == 0x08
    assert KIND_CODES["name_dob_swap"] == 0x09
    assert len(KINDS_BY_CODE) == len(KIND_CODES)
