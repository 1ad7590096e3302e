"""`derive_keys`: the identifier keys of a person, as fed to the OPRF.

Registration and check run this same function, and a match is exactly a shared key, so this
module decides both the recall of the service and its coincidental matches.

Every value starts with `b"refcheck/v1/"` then the kind; `<dob>` is `YYYY-MM-DD`; `<t>` is `t`
followed by `TABLES_VERSION`; words are `[a-z0-9]+` joined by one space.

| kind | strength | value after `refcheck/v1/` | count |
| --- | --- | --- | --- |
| `national_id` | strong | `national_id/<country>/<number>` | 0-1 |
| `passport` | strong | `passport/<country>/<number>` | 0-1 |
| `email` | strong | `email/<address>` | 0-1 |
| `phone` | strong | `phone/<E.164>` | 0-1 |
| `name_dob` | exact | `name_dob/<t>/<dob>/<folded words, sorted>` | 1 |
| `name_dob_variant` | variant | `name_dob_variant/<t>/skel/<dob>/<skeletons, sorted>` | 0-1 |
| `name_dob_variant` | variant | `name_dob_variant/<t>/init/<dob>/<first> <initials> <last>` | 0-2 |
| `name_dob_variant` | variant | `name_dob_variant/<t>/join/<dob>/<words run together>` | 1 |
| `name_dob_first_last` | variant | `name_dob_first_last/<t>/<dob>/<first, last word, sorted>` | 1 |
| `name_dob_abbrev` | variant | `name_dob_abbrev/<t>/<dob>/<words, initials, sorted>` | 0-1 |
| `name_dob_swap` | variant | `name_dob_swap/<t>/<dob A>/<dob B>/<folded words, sorted>` | 0-1 |
| `name_dob_variant` | variant | `name_dob_variant/<t>/del/<dob>/<folded words, sorted>` | 1 + n |

- `exact`: the name with titles, punctuation, case, diacritics, old spelling and transliteration
  folded, words sorted (Indonesian names have no fixed order between documents).
- `skel`: the consonant skeleton of every word, sorted: vowel variants (Ahmed/Ahmad,
  Zainul/Zainal) and dropped vowels; only if it has `MIN_SKELETON_LETTERS` letters.
- `init`: first and last word in full, middle words as initials, for names of three or more
  words ("Cucu Siti Setiawan" / "Cucu S. Setiawan").
- `join`: all words run together ("Nur Hayati" / "Nurhayati", "Ahmad-Utomo").
- `name_dob_first_last`: the first and the last word, so that a dropped middle name ("Siti Nur
  Aisyah" / "Siti Aisyah") or a patronymic connector written as an initial ("Agus B. Yusuf" /
  "Agus bin Yusuf") still meets. For a name of two words it is the name itself, which is what a
  longer name's key must meet; for one word (or a first word repeated last), that word.
- `name_dob_abbrev`: every word that is a name of the `abbreviated_names` table, or a one-letter
  word that is its initial, written as that initial ("M. Rizki Pratama" / "Muhammad Rizki
  Pratama"); only for a name that has such a word and another one.
- `name_dob_swap`: the exact name with both readings of a date whose day could be a month
  ("1990-03-07" / "1990-07-03", a clerk's dd/mm against mm/dd), the earlier as A, so that both
  records write the same value. Only when both readings are real dates and differ.
- `del`: the folded name, and the name with one letter (not the first) deleted from one written
  word of at least `MIN_LENGTH_FOR_DELETION` letters. Two records share a `del` key when one is
  the other with a letter dropped, or when both drop the same position (a substituted letter):
  symmetric deletion, as in SymSpell. The table's n is the number of such deletions: up to
  (length - 1) per word, which is most of the budget.

A mononym filled out for a form ("FNU Ratna", "Ratna LNU", "Ratna Ratna") needs no key of its
own: `name_tokens` drops the fillers and the repeat, so it shares the `name_dob` key of "Ratna".

Documents need no table, so their values carry no tables version; everything derived from a name
does, so that a table change cannot silently mix old and new keys. The order of the list is fixed
(strong, exact, then the variants in the order of the table, deletions by word then position), so
that when a long name exceeds `MAX_KEYS_PER_PERSON` the same keys are cut on both sides and the
strongest are kept; what is lost first is typo tolerance in the last words of a long name.
`KINDS` lists every kind `derive_keys` can emit (each has a code in `protocol.codes`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from protocol.identity.model import Person
from protocol.identity.normalise import (
    document_number,
    email_address,
    fold_tokens,
    name_tokens,
    phone_e164,
    skeleton,
)
from protocol.identity.tables import Tables, load_tables

__all__ = [
    "KEY_PREFIX",
    "KINDS",
    "Kind",
    "MAX_KEYS_PER_PERSON",
    "MIN_LENGTH_FOR_DELETION",
    "MIN_SKELETON_LETTERS",
    "Key",
    "Strength",
    "derive_keys",
]

#: The server's default cap on keys per checked person. `derive_keys` never returns more.
MAX_KEYS_PER_PERSON = 32

#: A written word needs this many letters before its one-letter deletions are emitted: deleting
#: a letter of a shorter word leaves two letters, which too many unrelated words share.
MIN_LENGTH_FOR_DELETION = 4

#: A `skel` key is only emitted when the skeletons of all words have this many letters together.
MIN_SKELETON_LETTERS = 3

KEY_PREFIX = b"refcheck/v1/"


class Kind(StrEnum):
    """Every kind of key `derive_keys` can emit, in the order of the module's table (each has a
    code in `protocol.codes`)."""

    NATIONAL_ID = "national_id"
    PASSPORT = "passport"
    EMAIL = "email"
    PHONE = "phone"
    NAME_DOB = "name_dob"
    NAME_DOB_VARIANT = "name_dob_variant"
    NAME_DOB_FIRST_LAST = "name_dob_first_last"
    NAME_DOB_ABBREV = "name_dob_abbrev"
    NAME_DOB_SWAP = "name_dob_swap"


#: Every kind `derive_keys` can emit, in the order of the module's table.
KINDS: tuple[Kind, ...] = tuple(Kind)


class Strength(StrEnum):
    """How much a shared key says. The SDK reports `variant` matches as "possible match" for a
    human to confirm in the disclosure step."""

    STRONG = "strong"
    EXACT = "exact"
    VARIANT = "variant"

    @property
    def rank(self) -> int:
        """0 for the strongest; for sorting and for "the strongest shared strength"."""
        return _RANK[self]


_RANK = {Strength.STRONG: 0, Strength.EXACT: 1, Strength.VARIANT: 2}


@dataclass(frozen=True, repr=False)
class Key:
    """One identifier key: `value` is the exact input to the OPRF.

    `repr` hides the value, which holds a name or document number in the clear.
    """

    kind: str
    strength: Strength
    value: bytes

    def __repr__(self) -> str:
        return (
            f"Key(kind={self.kind!r}, strength={self.strength.value!r}, "
            f"value=<{len(self.value)} bytes>)"
        )


def _key(kind: Kind, strength: Strength, *parts: str) -> Key:
    return Key(kind.value, strength, KEY_PREFIX + "/".join((kind.value, *parts)).encode("utf-8"))


def _document_keys(person: Person) -> list[Key]:
    keys: list[Key] = []
    if person.national_id is not None:
        keys.append(
            _key(
                Kind.NATIONAL_ID,
                Strength.STRONG,
                person.issuing_country("national_id"),
                document_number(person.national_id, "national_id"),
            )
        )
    if person.passport is not None:
        keys.append(
            _key(
                Kind.PASSPORT,
                Strength.STRONG,
                person.issuing_country("passport"),
                document_number(person.passport, "passport"),
            )
        )
    if person.email is not None:
        keys.append(_key(Kind.EMAIL, Strength.STRONG, email_address(person.email)))
    if person.phone is not None:
        keys.append(_key(Kind.PHONE, Strength.STRONG, phone_e164(person.phone, person.region())))
    return keys


def _deletion_variants(
    tokens: tuple[str, ...], folded: tuple[str, ...], tables: Tables
) -> Iterable[tuple[str, ...]]:
    """The name with one letter deleted from one written word (words of at least
    `MIN_LENGTH_FOR_DELETION` letters), each result folded like the name itself.

    Letters are deleted from the written form, not the folded one, because that is where a
    typing error happens; folding afterwards keeps an old-spelling record comparable. The first
    letter is never deleted: it is right in the great majority of real misspellings (Pollock and
    Zamora, CACM 1984), and deleting it is what lets unrelated short names meet ("Galih" without
    its "G" is "Alih", which folds to "Ali")."""
    for i, token in enumerate(tokens):
        if len(token) < MIN_LENGTH_FOR_DELETION:
            continue
        for j in range(1, len(token)):
            shorter = tables.fold(token[:j] + token[j + 1 :])
            if shorter:
                yield folded[:i] + (shorter,) + folded[i + 1 :]


def _initials_variants(tokens: tuple[str, ...], folded: tuple[str, ...]) -> list[tuple[str, ...]]:
    """First and last word (folded), middle words as initials: the initial as written
    ("Khairul" gives "k", as in "K.") and, if it differs, the initial of the folded word
    (which an old-spelling record shares: "Tjahjo" and "Cahyo" both fold to "c...")."""
    if len(folded) < 3:
        return []
    written = (folded[0], *(t[0] for t in tokens[1:-1]), folded[-1])
    fold_based = (folded[0], *(t[0] for t in folded[1:-1]), folded[-1])
    return [written] if written == fold_based else [written, fold_based]


def _first_last(folded: tuple[str, ...]) -> list[str]:
    """The first and the last word, sorted (words have no fixed order between documents), once
    if they are one word: a mononym's is the mononym, which "Dewi B. Dewi" meets."""
    return sorted({folded[0], folded[-1]})


def _abbreviated(
    tokens: tuple[str, ...], folded: tuple[str, ...], tables: Tables
) -> list[str] | None:
    """The folded words with every abbreviable name, and every written one-letter initial of
    one, as that initial, sorted; None unless the name has such a word and another word."""
    initials = frozenset(tables.abbreviated_names.values())
    words: list[str] = []
    abbreviable = 0
    for token, word in zip(tokens, folded, strict=True):
        initial = tables.abbreviated_names.get(word)
        if initial is None and token in initials:
            initial = token
        abbreviable += initial is not None
        words.append(word if initial is None else initial)
    return sorted(words) if 0 < abbreviable < len(words) else None


def _swapped(dob: dt.date) -> dt.date | None:
    """The date with day and month exchanged, if that is a real date and another one."""
    try:
        other = dt.date(dob.year, dob.day, dob.month)
    except ValueError:  # a day after the 12th is no month
        return None
    return other if other != dob else None


def _name_keys(person: Person, tables: Tables) -> list[Key]:
    tokens = name_tokens(person.full_name, tables)
    folded = fold_tokens(tokens, tables)
    dob = person.date_of_birth.isoformat()
    version = f"t{tables.version}"

    def variant(form: str, words: Iterable[str]) -> Key:
        return _key(Kind.NAME_DOB_VARIANT, Strength.VARIANT, version, form, dob, " ".join(words))

    keys = [_key(Kind.NAME_DOB, Strength.EXACT, version, dob, " ".join(sorted(folded)))]
    skeletons = sorted(skeleton(t) for t in folded)
    # A skeleton of one or two letters ("Dewi" is "d", "Nur" is "nr") is shared by too many
    # short one-word names to be worth a key; such names keep their `del` keys.
    if sum(map(len, skeletons)) >= MIN_SKELETON_LETTERS:
        keys.append(variant("skel", skeletons))
    keys.extend(variant("init", words) for words in _initials_variants(tokens, folded))
    # Emitted for one-word names too: "Nurhayati" must meet the "join" of "Nur Hayati".
    keys.append(variant("join", (tables.fold_spelling("".join(tokens)),)))
    first_last = " ".join(_first_last(folded))
    keys.append(_key(Kind.NAME_DOB_FIRST_LAST, Strength.VARIANT, version, dob, first_last))
    abbreviated = _abbreviated(tokens, folded, tables)
    if abbreviated is not None:
        keys.append(
            _key(Kind.NAME_DOB_ABBREV, Strength.VARIANT, version, dob, " ".join(abbreviated))
        )
    swapped = _swapped(person.date_of_birth)
    if swapped is not None:
        first, second = sorted((person.date_of_birth, swapped))
        keys.append(
            _key(
                Kind.NAME_DOB_SWAP,
                Strength.VARIANT,
                version,
                first.isoformat(),
                second.isoformat(),
                " ".join(sorted(folded)),
            )
        )
    # The deletion family holds the name itself too, so that a record with a deleted letter
    # meets the intact record's name; two records whose word differs by one substituted letter
    # meet where each deletes that letter (symmetric deletion, as in SymSpell).
    keys.append(variant("del", sorted(folded)))
    keys.extend(variant("del", sorted(d)) for d in _deletion_variants(tokens, folded, tables))
    return keys


def derive_keys(person: Person | Mapping[str, object]) -> list[Key]:
    """All keys of `person` (a `Person`, or a mapping accepted by `Person.from_dict`), strongest
    first, without duplicates, at most `MAX_KEYS_PER_PERSON`.

    Raises `InvalidPersonError` (without echoing any value) if the record is malformed.
    """
    if not isinstance(person, Person):
        person = Person.from_dict(person)
    tables = load_tables()
    seen: set[bytes] = set()
    keys: list[Key] = []
    for key in _document_keys(person) + _name_keys(person, tables):
        if key.value not in seen:
            seen.add(key.value)
            keys.append(key)
    return keys[:MAX_KEYS_PER_PERSON]
