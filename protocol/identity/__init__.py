"""Identity normalisation and identifier keys for blind matching (protocol.md, "Identifier keys").

    >>> keys = derive_keys({"full_name": "Muhammad Soekarno, Drs.", "date_of_birth": "1970-05-17",
    ...                     "nationality": "ID"})
    >>> keys[0].kind, keys[0].strength.value
    ('name_dob', 'exact')

`derive_keys` is the only function registration and check need; `Person` validates a record;
`TABLES_VERSION` is the version of the normalisation tables that every name-derived key carries;
`KINDS` lists every kind of key `derive_keys` can emit.
See `protocol.identity.keys` for the key kinds and value layout.
"""

from __future__ import annotations

from protocol.identity.errors import InvalidPersonError
from protocol.identity.keys import (
    KEY_PREFIX,
    KINDS,
    MAX_KEYS_PER_PERSON,
    Key,
    Strength,
    derive_keys,
)
from protocol.identity.model import PERSON_FIELDS, Person
from protocol.identity.tables import CURRENT_VERSION as TABLES_VERSION

__all__ = [
    "KEY_PREFIX",
    "KINDS",
    "MAX_KEYS_PER_PERSON",
    "PERSON_FIELDS",
    "TABLES_VERSION",
    "InvalidPersonError",
    "Key",
    "Person",
    "Strength",
    "derive_keys",
]
