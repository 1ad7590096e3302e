"""Normalisation of names and identifiers into the canonical strings that keys are built from.

Blind matching compares exact bytes, so every way two documents can write the same person must be
removed here, before the OPRF. What this module removes, and why:

- Unicode forms and scripts: NFKC (full-width letters, ligatures), then `anyascii`, a maintained
  transliteration to ASCII, so "Sétiàwan" and "Setiawan" agree.
- Case, spacing, punctuation, hyphens: names become lists of lower-case `[a-z0-9]` tokens.
- Titles and degrees ("H.", "Hj.", "Dr.", "Bapak", "S.H.", "M.Si"), which come and go between an
  ID card, a CV and a contract. They are stripped from the start and the end of the name and
  anywhere after the first comma; a title-like word in the middle is kept, because there it is
  more likely an initial ("Rahman H. Suryadi").
- Fillers that forms demand of a person with one name ("FNU", "LNU"), and the one name written
  twice to fill two fields ("Ratna Ratna"): a mononym is one word, however a form wrote it.
- Old Indonesian spelling and Arabic transliteration: `Tables.fold` (rules and tables are data,
  see `tables/`).

Identifiers (national ID, passport, e-mail, phone) get the normalisation of their format only:
they are exact by nature, and a looser form would turn a strong key into a weak one.

Error messages name the field and the rule, never the value (they may reach a log).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
from anyascii import anyascii

from protocol.identity.errors import InvalidPersonError
from protocol.identity.tables import Tables

__all__ = [
    "VOWELS",
    "country_code",
    "document_number",
    "email_address",
    "fold_tokens",
    "name_tokens",
    "phone_e164",
    "skeleton",
]

#: Letters a consonant skeleton drops (after the first letter of a token). 'y' and 'w' count as
#: vowels because in Indonesian they are mostly glides that documents add or omit
#: (Setyo/Setio, Juwita/Juita).
VOWELS = frozenset("aeiouyw")

# Separators between name tokens: anything that is not a letter, digit, dot or apostrophe.
# Apostrophes (and the backtick anyascii gives for an Arabic ayn) are removed inside a token
# instead, so "Ma'ruf" and "Maruf" agree.
_SEPARATOR_RE = re.compile(r"[^A-Za-z0-9.'`]+")
_APOSTROPHE_RE = re.compile(r"['`]")
# A dotted abbreviation such as "S.Pd", "M.Si.", "Ph.D", "Sp.OG", "S.H.", "S.Pd.I": a first part
# of one or two letters (the S, M, Sp, Ph, Dr of Indonesian and foreign degrees), then short parts.
_ABBREVIATION_RE = re.compile(r"^[A-Za-z]{1,2}\.(?:[A-Za-z]{1,4}\.)*[A-Za-z]{1,4}\.?$")
_MAX_NAME_CHARS = 300
_MAX_NAME_TOKENS = 12

_DOCUMENT_STRIP_RE = re.compile(r"[\s.\-/_,:]+")
_DOCUMENT_RE = re.compile(r"^[A-Z0-9]{6,32}$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_PHONE_NOISE_RE = re.compile(r"[\s().\-/]+")


@dataclass(frozen=True)
class _RawToken:
    """A name token before title stripping: its letters, and whether it was a dotted
    abbreviation (which makes it a degree at the end of a name and initials in the middle)."""

    word: str
    abbreviation: bool
    parts: tuple[str, ...]


def _raw_tokens(segment: str) -> list[_RawToken]:
    tokens: list[_RawToken] = []
    for chunk in _SEPARATOR_RE.split(segment):
        chunk = _APOSTROPHE_RE.sub("", chunk)
        if not chunk.strip("."):
            continue
        if "." not in chunk.strip("."):
            tokens.append(_RawToken(chunk.strip(".").lower(), False, ()))
        elif _ABBREVIATION_RE.match(chunk):
            parts = tuple(p.lower() for p in chunk.split(".") if p)
            tokens.append(_RawToken("".join(parts), True, parts))
        else:
            # "Hj.Aisyah" or "Ahmad.Utomo": dots used as spaces.
            tokens.extend(_RawToken(p.lower(), False, ()) for p in chunk.split(".") if p)
    return tokens


def _is_degree(token: _RawToken, degrees: frozenset[str]) -> bool:
    """A listed degree or title, or a dotted abbreviation with a part of two or more letters
    (an unlisted degree such as "S.Ak" or "Sp.KFR"). A run of one-letter parts that is not
    listed ("A.B.") is initials, which are part of the name."""
    return token.word in degrees or (token.abbreviation and any(len(p) > 1 for p in token.parts))


def name_tokens(full_name: str, tables: Tables) -> tuple[str, ...]:
    """Lower-case ASCII tokens of a name in written order, with titles, degrees, connectors and
    fillers removed, and a repeated mononym written once. Raises `InvalidPersonError` if nothing
    of a name is left."""
    if len(full_name) > _MAX_NAME_CHARS:
        raise InvalidPersonError(f"full_name is longer than {_MAX_NAME_CHARS} characters")
    ascii_name = anyascii(unicodedata.normalize("NFKC", full_name))
    head, _, tail = ascii_name.partition(",")
    titles = tables.prefix_titles
    # A one-letter title ("H.") is only stripped from the front: elsewhere it is an initial.
    degrees = tables.degrees | {w for w in tables.prefix_titles if len(w) > 1}

    # Fillers ("FNU", "F.N.U.") go first, wherever they are: they stand in for a missing name.
    main = [t for t in _raw_tokens(head) if t.word not in tables.fillers]
    # Degrees first, from the end, but never the last word standing ("Hj.Siti" is a title and a
    # name written together, not a degree).
    while len(main) > 1 and _is_degree(main[-1], degrees):
        main.pop()
    # After a comma come degrees and titles ("Soekarno, Drs.") or, in "Surname, Given" order,
    # the rest of the name: keep whatever is not a title or a degree.
    main += [
        t
        for t in _raw_tokens(tail)
        if not _is_degree(t, degrees) and t.word not in titles and t.word not in tables.fillers
    ]
    # A dotted abbreviation left is a run of initials ("S.R.") or a title glued to a name
    # ("H.M. Soeharto" is Haji Muhammad Soeharto).
    words = [p for t in main for p in (t.parts if t.abbreviation else (t.word,))]
    while words and words[0] in titles:
        words.pop(0)
    # A mononym written twice to fill a form's two name fields ("Ratna Ratna", "Soekarno
    # Sukarno") is the mononym. Only a name that is nothing but that word: in "Cucu Cucu Tanjung"
    # the repeat is a name, and in "Ahmad bin Ahmad" the father's.
    if len(words) > 1 and len({tables.fold(w) for w in words}) == 1:
        words = words[:1]
    words = [w for w in words if w not in tables.connectors]
    if not words:
        raise InvalidPersonError("full_name has no name left after removing titles and punctuation")
    if len(words) > _MAX_NAME_TOKENS:
        raise InvalidPersonError(f"full_name has more than {_MAX_NAME_TOKENS} words")
    return tuple(words)


def fold_tokens(tokens: Sequence[str], tables: Tables) -> tuple[str, ...]:
    """Spelling-folded tokens (old spelling, transliteration, name variants), in written order."""
    folded = tuple(tables.fold(t) for t in tokens)
    # A fold can only shorten a token to nothing through a malformed rule; refuse rather than
    # derive a key from a name that silently lost a word.
    if not all(folded):
        raise InvalidPersonError("full_name has a word that normalises to nothing")
    return folded


def skeleton(folded_token: str) -> str:
    """Consonant skeleton of a folded token: its first letter, then its consonants. It ignores
    vowel differences (Ahmed/Ahmad, Zainul/Zainal, Rahmanu/Rahman) and dropped vowels
    (Rahmn/Rahman), the commonest transliteration and typing variants. Doubled letters were
    already collapsed by the fold; consonants that meet once vowels are gone are kept, so that
    the skeleton still counts them (Muhammad "mhmd", Bambang "bmbng")."""
    return folded_token[0] + "".join(c for c in folded_token[1:] if c not in VOWELS)


def country_code(value: str, field: str) -> str:
    """ISO 3166-1 alpha-2 country code, upper-case."""
    code = unicodedata.normalize("NFKC", value).strip().upper()
    if not _COUNTRY_RE.match(code):
        raise InvalidPersonError(f"{field} must be an ISO 3166-1 alpha-2 country code")
    return code


def document_number(value: str, field: str) -> str:
    """A document number with spaces, dots, dashes and slashes removed, upper-case ASCII."""
    number = _DOCUMENT_STRIP_RE.sub("", anyascii(unicodedata.normalize("NFKC", value))).upper()
    if not _DOCUMENT_RE.match(number):
        raise InvalidPersonError(
            f"{field} must be 6 to 32 letters or digits (after removing spaces, dots and dashes)"
        )
    return number


def email_address(value: str) -> str:
    """An e-mail address in NFKC, trimmed and lower-cased.

    Lower-casing the local part is technically lossy (RFC 5321 lets it be case-sensitive) but no
    mail provider in use treats it so, and documents write addresses in any case.
    """
    address = unicodedata.normalize("NFKC", value).strip().lower()
    if not _EMAIL_RE.match(address) or address.endswith(".") or "." not in address.split("@")[1]:
        raise InvalidPersonError("email must be one address of the form local@domain")
    return address


def phone_e164(value: str, default_region: str | None) -> str:
    """A phone number in E.164 (`+6281234567890`), read in `default_region` (the nationality)
    when it is written in local form (`0812...`)."""
    text = unicodedata.normalize("NFKC", value).strip()
    if default_region is None and not text.startswith("+"):
        raise InvalidPersonError(
            "phone must be in international form (+...) when nationality is not given"
        )
    # "00" is the international prefix in most countries and is written that way in Indonesia
    # too, although Indonesian exchanges use 001/007/008: read "0062 812..." as "+62 812..."
    # when that gives a valid number, so that it meets the same number written with "+".
    digits = _PHONE_NOISE_RE.sub("", text)
    if digits.startswith("00"):
        international = _parse_phone("+" + digits[2:], None)
        if international is not None and phonenumbers.is_valid_number(international):
            return phonenumbers.format_number(international, phonenumbers.PhoneNumberFormat.E164)
    parsed = _parse_phone(text, default_region)
    if parsed is None:
        raise InvalidPersonError("phone is not a phone number")
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPersonError("phone has an impossible length for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _parse_phone(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
