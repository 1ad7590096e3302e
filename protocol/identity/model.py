"""The person record that keys are derived from, and its validation.

A `Person` is validated when it is built, so a record that cannot yield its keys is refused at
the point where the caller can still fix it (an HR import, a registration form), rather than
silently producing fewer keys and missing a match. Its `repr` shows which fields are present but
no value, so a record that reaches a log or a traceback reveals nothing about the person.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

from protocol.identity.errors import InvalidPersonError
from protocol.identity.normalise import (
    country_code,
    document_number,
    email_address,
    name_tokens,
    phone_e164,
)
from protocol.identity.tables import load_tables

__all__ = ["EARLIEST_DATE_OF_BIRTH", "PERSON_FIELDS", "Person"]

#: Dates of birth before this are refused as data-entry errors (a year typed as 1099 or 0199).
EARLIEST_DATE_OF_BIRTH = dt.date(1900, 1, 1)

_ISO_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_FIELD_NAME_RE = re.compile(r"^[a-z_]{1,40}$")
_OPTIONAL_TEXT = (
    "nationality",
    "national_id",
    "national_id_country",
    "passport",
    "passport_country",
    "email",
    "phone",
)


@dataclass(frozen=True, repr=False)
class Person:
    """A person as a reference check knows them.

    `full_name` and `date_of_birth` are required: a name never forms a key without the date of
    birth (a name alone is shared by too many people to be reported as a match). The documents
    are optional. `nationality` (ISO 3166-1 alpha-2) is the default issuing country of the
    national ID and the passport and the default region of a phone number written in local form;
    `national_id_country` and `passport_country` override it when they differ.

    >>> Person.from_dict({"full_name": "Ahmad Utomo", "date_of_birth": "2001-01-03",
    ...                   "nationality": "ID", "phone": "0812 9575 3514"})
    Person(fields=['full_name', 'date_of_birth', 'nationality', 'phone'])
    """

    full_name: str
    date_of_birth: dt.date
    nationality: str | None = None
    national_id: str | None = None
    national_id_country: str | None = None
    passport: str | None = None
    passport_country: str | None = None
    email: str | None = None
    phone: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.full_name, str) or not self.full_name.strip():
            raise InvalidPersonError("full_name is required and must be text")
        # datetime is a subclass of date; a timestamp would carry a time zone question into a
        # field that must compare as a calendar day.
        if self.date_of_birth is None:
            raise InvalidPersonError(
                "date_of_birth is required: a name never forms a key without the date of birth"
            )
        if not isinstance(self.date_of_birth, dt.date) or isinstance(
            self.date_of_birth, dt.datetime
        ):
            raise InvalidPersonError(
                "date_of_birth must be a datetime.date (Person.from_dict reads ISO text)"
            )
        if self.date_of_birth < EARLIEST_DATE_OF_BIRTH:
            raise InvalidPersonError("date_of_birth is before 1900")
        if self.date_of_birth > dt.date.today():
            raise InvalidPersonError("date_of_birth is in the future")
        for name in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidPersonError(f"{name} must be text")
        # Run every normaliser once so that a record which cannot yield its keys fails here.
        name_tokens(self.full_name, load_tables())
        if self.nationality is not None:
            country_code(self.nationality, "nationality")
        if self.national_id is not None:
            document_number(self.national_id, "national_id")
            self.issuing_country("national_id")
        if self.passport is not None:
            document_number(self.passport, "passport")
            self.issuing_country("passport")
        if self.email is not None:
            email_address(self.email)
        if self.phone is not None:
            phone_e164(self.phone, self.region())

    def region(self) -> str | None:
        """The nationality as an upper-case country code, or None."""
        return None if self.nationality is None else country_code(self.nationality, "nationality")

    def issuing_country(self, document: str) -> str:
        """Issuing country of `document` ("national_id" or "passport"): its own field, else the
        nationality. A document number without a country is refused, since the same number can
        be issued by two countries."""
        own = getattr(self, f"{document}_country")
        if own is not None:
            return country_code(own, f"{document}_country")
        region = self.region()
        if region is None:
            raise InvalidPersonError(f"{document} needs {document}_country or nationality")
        return region

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Person:
        """Build a `Person` from a mapping with the field names of this class.

        `date_of_birth` is an ISO `YYYY-MM-DD` string (or a `date`). Empty strings and None in
        optional fields mean "absent", as in a spreadsheet export. Unknown field names are refused:
        a misspelt `passport_no` silently ignored would mean a missed match.
        """
        if not isinstance(data, Mapping):
            raise InvalidPersonError("a person must be given as a mapping of field names")
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            # Echo unknown names only if they look like field names; a malformed import could
            # put a value where a key should be.
            shown = sorted(k for k in unknown if isinstance(k, str) and _FIELD_NAME_RE.match(k))
            hidden = len(unknown) - len(shown)
            detail = ", ".join(shown) + (f" (+{hidden} more)" if hidden and shown else "")
            raise InvalidPersonError(
                f"unknown person field(s): {detail}" if shown else "unknown person field(s)"
            )
        full_name = data.get("full_name")
        if not isinstance(full_name, str):
            raise InvalidPersonError("full_name is required and must be text")
        return cls(
            full_name=full_name,
            date_of_birth=_parse_date(data.get("date_of_birth")),
            nationality=_optional_text(data, "nationality"),
            national_id=_optional_text(data, "national_id"),
            national_id_country=_optional_text(data, "national_id_country"),
            passport=_optional_text(data, "passport"),
            passport_country=_optional_text(data, "passport_country"),
            email=_optional_text(data, "email"),
            phone=_optional_text(data, "phone"),
        )

    def __repr__(self) -> str:
        present = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        return f"Person(fields={present!r})"


#: The field names of `Person`, in order: what a person file, a staff-list row or an applicant's
#: details may name. Derived from the class so the lists that accept a person cannot drift from it.
PERSON_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Person))


def _optional_text(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    # A number here is a spreadsheet cell that lost its leading zero or its "+": refuse it.
    if not isinstance(value, str):
        raise InvalidPersonError(f"{name} must be text")
    return value if value.strip() else None


def _parse_date(value: object) -> dt.date:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidPersonError(
            "date_of_birth is required: a name never forms a key without the date of birth"
        )
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    # date.fromisoformat alone also accepts "20010103" and week dates; documents and forms use
    # one format, and accepting others would hide a swapped day and month.
    if not isinstance(value, str) or not _ISO_DATE_RE.match(value.strip()):
        raise InvalidPersonError("date_of_birth must be an ISO date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidPersonError("date_of_birth is not a real calendar date") from None
