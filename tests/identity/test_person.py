"""Validation of person records: refused clearly, and never with the value in the message."""

from __future__ import annotations

import datetime as dt

import pytest

from protocol.errors import InvalidInputError
from protocol.identity import InvalidPersonError, Person

VALID: dict[str, object] = {
    "full_name": "Ahmad Utomo",
    "date_of_birth": "2001-01-03",
    "nationality": "ID",
}


def refusal(record: dict[str, object]) -> str:
    with pytest.raises(InvalidPersonError) as info:
        Person.from_dict(record)
    message = str(info.value)
    # Chained exceptions (date.fromisoformat quotes its input) must not reach a traceback.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    return message


def test_person_error_is_a_protocol_invalid_input_error() -> None:
    assert issubclass(InvalidPersonError, InvalidInputError)


def test_a_valid_record_builds_and_its_repr_shows_no_value() -> None:
    record = {**VALID, "passport": "B2976225", "email": "ahmad@example.org"}
    person = Person.from_dict(record)
    assert person.date_of_birth == dt.date(2001, 1, 3)
    text = repr(person)
    assert "Ahmad" not in text and "B2976225" not in text and "example" not in text
    assert "passport" in text


@pytest.mark.parametrize(
    ("change", "rule", "secret"),
    [
        ({"date_of_birth": None}, "a name never forms a key without the date of birth", None),
        ({"date_of_birth": ""}, "a name never forms a key without the date of birth", None),
        ({"date_of_birth": "03-01-2001"}, "ISO date YYYY-MM-DD", "03-01-2001"),
        ({"date_of_birth": "20010103"}, "ISO date YYYY-MM-DD", "20010103"),
        ({"date_of_birth": "2001-02-30"}, "not a real calendar date", "2001-02-30"),
        ({"date_of_birth": "1850-02-03"}, "before 1900", "1850"),
        ({"date_of_birth": "2999-02-03"}, "in the future", "2999"),
        ({"date_of_birth": 20010103}, "ISO date YYYY-MM-DD", "20010103"),
        ({"full_name": ""}, "full_name is required", None),
        ({"full_name": None}, "full_name is required", None),
        ({"full_name": "Dr. H."}, "no name left", None),
        ({"full_name": "x" * 400}, "longer than", None),
        ({"nationality": "Indonesia"}, "ISO 3166-1 alpha-2", "Indonesia"),
        ({"national_id": "32-01-7"}, "national_id must be 6 to 32", "32-01"),
        ({"passport": "B29#76225"}, "passport must be 6 to 32", "B29"),
        ({"email": "ahmad.utomo.example.org"}, "email must be one address", "ahmad.utomo"),
        ({"phone": "0812"}, "phone has an impossible length", "0812"),
        ({"phone": "not a number"}, "phone is not a phone number", "not a number"),
        ({"phone": 81295753514}, "phone must be text", "81295753514"),
        ({"nationality": None, "phone": "081295753514"}, "international form", "0812"),
        ({"nationality": None, "passport": "B2976225"}, "passport needs", "B2976225"),
        ({"national_id_country": "Indonesia", "national_id": "320123"}, "alpha-2", "Indonesia"),
    ],
)
def test_a_bad_field_is_refused_naming_the_rule_not_the_value(
    change: dict[str, object], rule: str, secret: str | None
) -> None:
    message = refusal({**VALID, **change})
    assert rule in message
    if secret is not None:
        assert secret not in message


def test_unknown_fields_are_refused_so_a_misspelt_document_is_not_silently_dropped() -> None:
    assert "passport_no" in refusal({**VALID, "passport_no": "B2976225"})


def test_an_unknown_field_that_looks_like_a_value_is_not_echoed() -> None:
    message = refusal({**VALID, "Ahmad Utomo 3201234567890001": "x"})
    assert "Ahmad" not in message and "3201" not in message


def test_empty_optional_fields_mean_absent() -> None:
    person = Person.from_dict({**VALID, "email": "  ", "phone": "", "passport": None})
    assert person.email is None and person.phone is None and person.passport is None


def test_a_date_object_is_accepted_but_a_datetime_is_not() -> None:
    assert Person.from_dict({**VALID, "date_of_birth": dt.date(2001, 1, 3)}).date_of_birth == (
        dt.date(2001, 1, 3)
    )
    with pytest.raises(InvalidPersonError, match="must be a datetime.date"):
        Person(full_name="Ahmad Utomo", date_of_birth=dt.datetime(2001, 1, 3))
    with pytest.raises(InvalidPersonError, match="must be a datetime.date"):
        Person(full_name="Ahmad Utomo", date_of_birth="2001-01-03")  # type: ignore[arg-type]
    with pytest.raises(InvalidPersonError, match="never forms a key without"):
        Person(full_name="Ahmad Utomo", date_of_birth=None)  # type: ignore[arg-type]


def test_a_document_without_any_country_is_refused_but_its_own_country_suffices() -> None:
    with pytest.raises(InvalidPersonError, match="national_id needs"):
        Person(full_name="A B", date_of_birth=dt.date(2001, 1, 3), national_id="3201234567890001")
    person = Person(
        full_name="A B",
        date_of_birth=dt.date(2001, 1, 3),
        national_id="3201234567890001",
        national_id_country="id",
    )
    assert person.issuing_country("national_id") == "ID"


def test_from_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(InvalidPersonError, match="mapping"):
        Person.from_dict(["Ahmad Utomo", "2001-01-03"])  # type: ignore[arg-type]
