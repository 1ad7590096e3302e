"""Synthetic applicants and staff: plausible records, none of them a real person.

Names are drawn from common Indonesian given and family names (the network's first deployment),
dates of birth from working ages, and document numbers, e-mail addresses and phone numbers are
made from the index, so every record is distinct, deterministic for a seed, and never collides
with a real identifier in a way that matters (nothing leaves this machine).
"""

from __future__ import annotations

import random
from datetime import date, timedelta

__all__ = ["POPULATION", "person"]

#: Size of the synthetic population `make load`'s applicants and registered people come from.
POPULATION = 3000

_GIVEN = (
    "Siti", "Budi", "Dewi", "Agus", "Rina", "Ahmad", "Putri", "Joko", "Ayu", "Hendra",
    "Nur", "Eko", "Sri", "Andi", "Wati", "Rudi", "Lestari", "Yusuf", "Indah", "Bayu",
)  # fmt: skip
_FAMILY = (
    "Rahmawati", "Santoso", "Wijaya", "Susanto", "Hidayat", "Kusuma", "Saputra", "Pratama",
    "Setiawan", "Nugroho", "Lubis", "Siregar", "Harahap", "Sitompul", "Tanjung", "Wibowo",
)  # fmt: skip


def person(index: int, *, seed: int = 0) -> dict[str, str]:
    """An applicant record in `protocol.identity.Person.from_dict` form."""
    rng = random.Random(seed * 1_000_003 + index)
    given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
    born = date(1965, 1, 1) + timedelta(days=rng.randrange(40 * 365))
    return {
        "full_name": f"{given} {family}",
        "date_of_birth": born.isoformat(),
        "nationality": "ID",
        "national_id": f"32{rng.randrange(10**13):013d}{index % 10}",
        "email": f"{given.lower()}.{family.lower()}.{index}@example.org",
        "phone": f"+628{rng.randrange(10**9, 10**10)}",
    }
