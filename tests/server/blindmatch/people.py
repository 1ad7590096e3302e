"""Synthetic people for the blind-match tests (invented names and numbers, no real person).

`REGISTERED` is the subject of a case; each `SPELLING_VARIANTS` entry is how another
organisation's HR system might have the same person on file; `OTHER` shares nothing with them.
"""

from __future__ import annotations

REGISTERED: dict[str, object] = {
    "full_name": "Siti Nurhaliza Rahmawati",
    "date_of_birth": "1988-04-12",
    "nationality": "ID",
    "national_id": "3201234567890001",
    "email": "siti.rahmawati@example.org",
}

SPELLING_VARIANTS: list[dict[str, object]] = [
    # one letter added in two words, no documents
    {"full_name": "Siti Nurhalizah Rahmawaty", "date_of_birth": "1988-04-12"},
    # old-style spelling of the first name
    {"full_name": "Sity Nurhaliza Rahmawati", "date_of_birth": "1988-04-12"},
    # middle name as an initial
    {"full_name": "Siti N. Rahmawati", "date_of_birth": "1988-04-12"},
    # another name on file, same national ID written with separators
    {
        "full_name": "S. Rahmawati",
        "date_of_birth": "1988-04-12",
        "nationality": "ID",
        "national_id": "3201-2345-6789-0001",
    },
]

OTHER: dict[str, object] = {
    "full_name": "Dewi Lestari Putri",
    "date_of_birth": "1990-09-30",
    "nationality": "ID",
    "national_id": "3174056509900002",
}

#: Every value of the people above, for the tests that search stored rows and logs for them.
ALL_PEOPLE: list[dict[str, object]] = [REGISTERED, *SPELLING_VARIANTS, OTHER]
