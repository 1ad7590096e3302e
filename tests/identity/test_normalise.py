"""Normalisation of names and identifiers, one rule at a time."""

from __future__ import annotations

import pytest

from protocol.identity import InvalidPersonError
from protocol.identity.normalise import (
    document_number,
    email_address,
    fold_tokens,
    name_tokens,
    phone_e164,
    skeleton,
)
from protocol.identity.tables import load_tables

TABLES = load_tables()


@pytest.mark.parametrize(
    ("written", "tokens"),
    [
        ("  Ahmad   UTOMO ", ("ahmad", "utomo")),
        ("Prof. Dr. Ir. H. Ahmad Utomo, S.H., M.Si.", ("ahmad", "utomo")),
        ("Muhammad Soekarno, Drs.", ("muhammad", "soekarno")),
        ("Ahmad Utomo S.Pd", ("ahmad", "utomo")),
        ("Ahmad Utomo, S.Ak", ("ahmad", "utomo")),  # an unlisted dotted degree after a comma
        ("Ahmad Utomo SKM", ("ahmad", "utomo")),
        ("UTOMO, Ahmad", ("utomo", "ahmad")),
        ("Hj.Siti Aisyah", ("siti", "aisyah")),
        ("Dr.Ahmad Utomo", ("ahmad", "utomo")),
        ("Ahmad.Utomo", ("ahmad", "utomo")),
        ("Ahmad-Utomo", ("ahmad", "utomo")),
        ("Cucu S. Setiawan", ("cucu", "s", "setiawan")),
        ("Cucu S.R. Setiawan", ("cucu", "s", "r", "setiawan")),
        ("Rahman H. Suryadi", ("rahman", "h", "suryadi")),  # H. in the middle is an initial
        ("Ahmad bin Abdullah", ("ahmad", "abdullah")),
        ("Ma'ruf Amin", ("maruf", "amin")),
        ("Cucu Siti Sétiàwan", ("cucu", "siti", "setiawan")),
        ("Ｍｕｈａｍｍａｄ　Ａｌｉ", ("muhammad", "ali")),
        ("Bapak Joko", ("joko",)),
        ("H.M. Soeharto", ("m", "soeharto")),  # Haji Muhammad
        ("Utomo, A.B.", ("utomo", "a", "b")),  # unlisted one-letter runs are initials
        ("Ahmad Utomo, S.S.", ("ahmad", "utomo")),
        # fillers for a missing first or last name, wherever they are, with or without dots
        ("FNU Ratna", ("ratna",)),
        ("Ratna LNU", ("ratna",)),
        ("NFN Ratna", ("ratna",)),
        ("F.N.U. Ratna", ("ratna",)),
        ("RATNA, FNU", ("ratna",)),
        ("Agus FNU Santoso", ("agus", "santoso")),
        # a mononym written twice is written once; a repeat beside another name is a name
        ("Ratna Ratna", ("ratna",)),
        ("RATNA ratna", ("ratna",)),
        ("Soekarno Sukarno", ("soekarno",)),  # one word once folded
        ("Cucu Cucu Tanjung", ("cucu", "cucu", "tanjung")),
        ("Ahmad bin Ahmad", ("ahmad", "ahmad")),  # the father's name, not a repeat
        # "bt." is binti; a one-letter "B." may be an initial and stays
        ("Siti bt. Yusuf", ("siti", "yusuf")),
        ("Siti BT Yusuf", ("siti", "yusuf")),
        ("Agus B. Yusuf", ("agus", "b", "yusuf")),
    ],
)
def test_name_tokens_drop_case_punctuation_titles_and_degrees(
    written: str, tokens: tuple[str, ...]
) -> None:
    assert name_tokens(written, TABLES) == tokens


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Soekarno", "Sukarno"),  # oe > u
        ("Djoko", "Joko"),  # dj > j
        ("Tjahjono", "Cahyono"),  # tj > c, j > y
        ("Sjamsoel", "Syamsul"),  # sj > sy
        ("Njoman", "Nyoman"),  # nj > ny
        ("Achmad", "Ahmad"),  # ch > kh (> h)
        ("Setjo", "Setyo"),  # tj read as t + y
        ("Hardjanto", "Haryanto"),  # dj read as d + y
        ("Tandjoeng", "Tanjung"),
    ],
)
def test_old_spelling_folds_onto_the_1972_spelling(old: str, new: str) -> None:
    assert fold_tokens((old.lower(),), TABLES) == fold_tokens((new.lower(),), TABLES)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("rizky", "rizki"),
        ("rizqi", "rizki"),
        ("sitti", "siti"),
        ("fatima", "fatimah"),
        ("nour", "nur"),
        ("noor", "nur"),
        ("zaenal", "zainal"),
        ("utsman", "usman"),
        ("fathimah", "fatimah"),
        ("aishah", "aisyah"),
        ("khairul", "hairul"),
        ("ady", "adi"),
    ],
)
def test_transliteration_variants_fold_together(a: str, b: str) -> None:
    assert fold_tokens((a,), TABLES) == fold_tokens((b,), TABLES)


@pytest.mark.parametrize(("a", "b"), [("hasan", "husin"), ("joko", "yoko"), ("sri", "tri")])
def test_distinct_names_and_initials_keep_their_identity(a: str, b: str) -> None:
    folded = fold_tokens((a, b, "y", "j"), TABLES)
    assert folded[2] == "y" and folded[3] == "y"  # one-letter initials are not rewritten away
    if (a, b) != ("joko", "yoko"):  # j and y are one letter by design
        assert folded[0] != folded[1]


def test_skeleton_keeps_the_first_letter_and_the_consonants() -> None:
    assert skeleton("ahmad") == skeleton("ahmed") == "ahmd"
    assert skeleton("muhamad") == "mhmd"
    assert skeleton("ayu") == "a"


@pytest.mark.parametrize(
    ("written", "number"),
    [
        ("131860.913909.9603", "1318609139099603"),
        (" b29 76225", "B2976225"),
        ("3201-2345-6789-0001", "3201234567890001"),
        ("ｂ２９７６２２５", "B2976225"),
    ],
)
def test_document_numbers_lose_separators_and_case(written: str, number: str) -> None:
    assert document_number(written, "passport") == number


def test_email_is_trimmed_and_lower_cased() -> None:
    assert email_address(" AHMAD.UTOMO@EXAMPLE.ORG ") == "ahmad.utomo@example.org"


@pytest.mark.parametrize(
    ("written", "region"),
    [
        ("081295753514", "ID"),
        ("0812-9575-3514", "ID"),
        ("+62 812-9575-3514", "ID"),
        ("+62 812 9575 3514", None),
        ("(0812) 9575 3514", "ID"),
        ("0062 812 9575 3514", "ID"),
        ("+62 (0)812 9575 3514", "ID"),
        ("6281295753514", "ID"),
    ],
)
def test_phone_numbers_become_e164(written: str, region: str | None) -> None:
    assert phone_e164(written, region) == "+6281295753514"


@pytest.mark.parametrize("written", ["Dr. H., S.H.", "FNU LNU", "F.N.U.", "Bapak FNU"])
def test_a_name_of_only_titles_or_fillers_is_refused(written: str) -> None:
    with pytest.raises(InvalidPersonError, match="no name left"):
        name_tokens(written, TABLES)
