"""What `derive_keys` must match, what it must not, and the shape of what it returns.

The pairs below pin representative cases of every variant class the network's records show; a
pair "matches at" the strongest strength of the keys both records share.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.identity import (
    KEY_PREFIX,
    MAX_KEYS_PER_PERSON,
    TABLES_VERSION,
    InvalidPersonError,
    Key,
    Person,
    Strength,
    derive_keys,
)

DOB = "1967-08-15"


def person(name: str, dob: str = DOB, **extra: str) -> dict[str, object]:
    return {"full_name": name, "date_of_birth": dob, "nationality": "ID", **extra}


def strongest_shared(a: dict[str, object], b: dict[str, object]) -> Strength | None:
    keys_a = {k.value: k.strength for k in derive_keys(a)}
    shared = [
        min(k.strength, keys_a[k.value], key=lambda s: s.rank)
        for k in derive_keys(b)
        if k.value in keys_a
    ]
    return min(shared, key=lambda s: s.rank) if shared else None


EXACT, VARIANT, STRONG = Strength.EXACT, Strength.VARIANT, Strength.STRONG

SAME_PERSON = [
    # the issue's own example: a degree after a comma, old spelling, a transliteration, case
    ("Muhammad Soekarno, Drs.", "MOHAMAD SUKARNO", EXACT),
    # case_space
    ("Cucu Siti Setiawan", "CUCU  SITI  SETIAWAN ", EXACT),
    ("Ayu Cahyono", "ayu  CAHYONO ", EXACT),
    # punctuation and hyphens
    ("Ahmad Utomo", "Ahmad-Utomo", EXACT),
    ("Ismail Ratna Suryadi", "Ismail-Ratna Suryadi", EXACT),
    ("Rizki", "Rizki.", EXACT),
    # diacritics and other Unicode forms
    ("Cucu Siti Setiawan", "Cucu Siti Sétiàwan", EXACT),
    ("Hendra Ratna Hartono", "Héndrà Ratna Hartono", EXACT),
    ("Ahmad Ali", "Ａｈｍａｄ　Ａｌｉ", EXACT),
    # titles and honorifics before the name
    ("Ahmad Utomo", "Hj. Ahmad Utomo", EXACT),
    ("Ahmad Cahyono", "H. Ahmad Cahyono", EXACT),
    ("Ismail Ratna Suryadi", "Ibu Ismail Ratna Suryadi", EXACT),
    ("Rizki", "Drs. Rizki", EXACT),
    ("Ahmad Utomo", "Prof. Dr. Ir. H. Ahmad Utomo", EXACT),
    ("Siti Aisyah", "Hj.Siti Aisyah", EXACT),
    # degrees after the name
    ("Ahmad Utomo", "Ahmad Utomo, S.Pd", EXACT),
    ("Cucu Siti Setiawan", "Cucu Siti Setiawan, M.M.", EXACT),
    ("Ismail Ratna Suryadi", "Ismail Ratna Suryadi, SKM", EXACT),
    ("Ahmad Utomo", "Ahmad Utomo, S.H., M.Si.", EXACT),
    ("Ahmad Utomo", "Ahmad Utomo S.Kom", EXACT),
    ("Ahmad Utomo", "Dr. Ahmad Utomo, Sp.OG", EXACT),
    # pre-1972 spelling, fully and partly applied
    ("Syamsul Tanjung", "Sjamsoel Tandjoeng", EXACT),
    ("Cucu Siti Setiawan", "Tjoetjoe Siti Setiawan", EXACT),
    ("Ayu Cahyono", "Ajoe Tjahjono", EXACT),
    ("Ayu Cahyono", "Ajoe Cahjono", EXACT),
    ("Setyo Harahap", "Setjo Harahap", EXACT),
    ("Joko Widodo", "Djoko Widodo", EXACT),
    ("Khairul Anwar", "Chairul Anwar", EXACT),
    # transliterations of Arabic-origin names
    ("Ahmad Utomo", "Achmad Utomo", EXACT),
    ("Ahmad Cahyono", "Ahmed Cahyono", EXACT),
    ("Aisyah", "Aishah", EXACT),
    ("Syamsul Tanjung", "Samsul Tanjung", EXACT),
    ("Cucu Siti Setiawan", "Cucu Sitti Setiawan", EXACT),
    ("Rizki Purnomo", "Rizqy Purnomo", EXACT),
    ("Nur Kusuma", "Nour Kusuma", EXACT),
    ("Fatimah Nasution", "Fathimah Nasution", EXACT),
    ("Usman Zainal Simanjuntak", "Usman Zainul Simanjuntak", EXACT),
    ("Abdul Kurniawan", "Abdoel Kurniawan", EXACT),
    ("Muhammad Hatta", "Moh. Hatta", EXACT),
    ("Rahman Kartika Simanjuntak", "Rahmanu Kartika Simanjuntak", VARIANT),
    ("Hidayat Tanjung", "Hidayah Tanjung", VARIANT),
    # token order
    ("Cucu Siti Setiawan", "Siti Setiawan Cucu", EXACT),
    ("Ahmad Utomo", "UTOMO, Ahmad", EXACT),
    # initials for middle names
    ("Cucu Siti Setiawan", "Cucu S. Setiawan", VARIANT),
    ("Ayu Khairul Saputra", "Ayu K. Saputra", VARIANT),
    ("Setyo Cucu Tanjung", "Setyo C. Tanjung", VARIANT),
    # a letter dropped (typing), anywhere after the first letter of any word
    ("Ahmad Utomo", "Ahad Utomo", VARIANT),
    ("Rizki", "Rizi", VARIANT),
    ("Setyo Cucu Tanjung", "Seyo Cucu Tanjung", VARIANT),
    ("Muhammad Mulyono", "Muammad Mulyono", VARIANT),
    ("Bambang Kusuma", "Babang Kusuma", VARIANT),
    ("Bambang Kusuma", "Bambang Kusma", VARIANT),
    ("Aisyah", "Aisah", EXACT),
    # one letter substituted in one word
    ("Hendra Kurniawan", "Hendra Kurniawen", VARIANT),
    # words run together
    ("Nur Hayati", "Nurhayati", VARIANT),
    # patronymic connector
    ("Ahmad bin Abdullah", "Ahmad Abdullah", EXACT),
    # round 2 (issue 16). A mononym filled out for a form: fillers and the repeat are dropped
    ("Ratna", "Ratna Ratna", EXACT),
    ("Ratna", "FNU Ratna", EXACT),
    ("Ratna", "Ratna LNU", EXACT),
    ("Putri", "NFN Putri", EXACT),
    ("Ratna", "F.N.U. Ratna", EXACT),
    ("Ratna", "RATNA, FNU", EXACT),
    ("Ratna Ratna", "FNU Ratna", EXACT),
    # bin/binti dropped or abbreviated: "bt." is binti, a one-letter "B." may be an initial
    ("Agus bin Yusuf", "Agus Yusuf", EXACT),
    ("Siti binti Yusuf", "Siti bt. Yusuf", EXACT),
    ("Siti binti Yusuf", "Siti Bt Yusuf", EXACT),
    ("Agus bin Yusuf", "Agus B. Yusuf", VARIANT),
    ("Agus Yusuf", "Agus B. Yusuf", VARIANT),
    ("Siti Aminah binti Abdul Rahman", "Siti Aminah B. Abdul Rahman", VARIANT),
    ("Ahmad bin Ahmad", "Ahmad B. Ahmad", VARIANT),
    ("Dewi binti Dewi", "Dewi Dewi", VARIANT),
    # Muhammad abbreviated: the longer abbreviations are spellings, "M." is an initial
    ("Muhammad Rizki Pratama", "Moch. Rizki Pratama", EXACT),
    ("Muhammad Rizki Pratama", "Moh. Rizki Pratama", EXACT),
    ("Muhammad Rizki Pratama", "Muh. Rizki Pratama", EXACT),
    ("Muhammad Rizki Pratama", "Mhd. Rizki Pratama", EXACT),
    ("Muhammad Rizki Pratama", "Muhd. Rizki Pratama", EXACT),
    ("Muhammad Rizki Pratama", "M. Rizki Pratama", VARIANT),
    ("Mhd. Rizki Pratama", "M. Rizki Pratama", VARIANT),
    ("Muhammad Sukarno", "M Sukarno", VARIANT),
    ("Muhammad Soeharto", "H.M. Soeharto", VARIANT),  # Haji Muhammad
    # a middle name dropped
    ("Siti Nur Aisyah", "Siti Aisyah", VARIANT),
    ("Ratna Hendra Hasibuan", "Ratna Hasibuan", VARIANT),
    ("Agus Budi Santoso Wibowo", "Agus Budi Wibowo", VARIANT),
    ("Agus Budi Santoso Wibowo", "Agus Wibowo", VARIANT),
]


@pytest.mark.parametrize(("a", "b", "strength"), SAME_PERSON)
def test_spellings_of_one_person_share_a_key(a: str, b: str, strength: Strength) -> None:
    assert strongest_shared(person(a), person(b)) == strength
    assert strongest_shared(person(b), person(a)) == strength


DIFFERENT_PEOPLE = [
    # one word differs, same date of birth
    ("Ahmad Utomo", "Ahmad Simanjuntak"),
    ("Cucu Siti Setiawan", "Cucu Siti Gunawan"),
    ("Setyo Cucu Tanjung", "Setyo Cucu Setiawan"),
    ("Hidayat Setyo Kusuma", "Hidayat Setyo Kusumawati"),
    ("Surya Syaiful Setiawan", "Surya Syaiful Tanjung"),
    ("Usman Kusumawati", "Usman Kurniawan"),
    ("Aisyah", "Hasibuan"),
    ("Hasan", "Cahyono"),
    # different people born the same day
    ("Ahmad Utomo", "Nur Hasibuan"),
    ("Hasan Tanjung", "Aisyah Hasan Tanjung"),
    ("Muhammad Mulyono", "Muhammad Kusumawati"),
    ("Cucu", "Siti Setiawan"),
    ("Aisyah", "Wahyu Wahyu Mulyono"),
    # a short name that a dropped first letter would otherwise reach
    ("Ali", "Galih"),
    # one-word names whose consonant skeleton is a single letter ("d")
    ("Dewi", "Daya"),
    # round 2 (issue 16). Twins: the same family name, another given name
    ("Rahman Hasibuan", "Wahyu Hasibuan"),
    ("Agus Aisyah Kurniawan", "Yosef Aisyah Kurniawan"),
    ("Ratna", "Putri"),
    ("Ratna Ratna", "FNU Putri"),
    ("M. Rizki Pratama", "Muhammad Rafi Pratama"),
    ("Muhammad Rizki", "Muhammad Rafi"),
    # the same name with another father
    ("Agus bin Yusuf", "Agus bin Ahmad"),
    ("Siti binti Yusuf", "Siti bt. Ismail"),
    ("Agus B. Yusuf", "Agus bin Ahmad"),
    # a mononym is not the first word of a longer name; "M." is not a word dropped
    ("Ratna", "Ratna Sari"),
    ("FNU Ratna", "Ratna Sari"),
    ("M. Rizki", "Rizki"),
    ("Siti Aisyah", "Siti Aminah"),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT_PEOPLE)
def test_different_people_born_the_same_day_share_no_key(a: str, b: str) -> None:
    assert strongest_shared(person(a), person(b)) is None


@pytest.mark.parametrize("name", ["Ahmad Utomo", "Aisyah", "Cucu Siti Setiawan"])
def test_same_name_with_another_date_of_birth_shares_no_key(name: str) -> None:
    assert strongest_shared(person(name, "1967-08-15"), person(name, "1967-08-16")) is None


@pytest.mark.parametrize(
    "name", ["Ahmad Utomo", "Ratna", "Muhammad Rizki Pratama", "Siti Nur Aisyah"]
)
@pytest.mark.parametrize(
    ("dob_a", "dob_b"),
    [
        ("1990-03-07", "1991-03-07"),  # a year off
        ("1990-03-07", "1988-03-07"),  # two years off
        ("1990-03-07", "1991-07-03"),  # swapped, and a year off
        ("1990-03-07", "1990-07-04"),  # not a swap
    ],
)
def test_same_name_born_in_another_year_or_on_another_day_shares_no_key(
    name: str, dob_a: str, dob_b: str
) -> None:
    assert strongest_shared(person(name, dob_a), person(name, dob_b)) is None


@pytest.mark.parametrize("name", ["Ahmad Utomo", "Ratna", "FNU Ratna", "Muhammad Rizki Pratama"])
@pytest.mark.parametrize(
    ("dob_a", "dob_b"), [("1990-03-07", "1990-07-03"), ("1990-12-01", "1990-01-12")]
)
def test_a_date_with_day_and_month_swapped_matches_as_a_variant(
    name: str, dob_a: str, dob_b: str
) -> None:
    assert strongest_shared(person(name, dob_a), person(name, dob_b)) == VARIANT


def swap_keys(dob: str) -> list[Key]:
    return [k for k in derive_keys(person("Ahmad Utomo", dob)) if k.kind == "name_dob_swap"]


def test_a_swap_key_needs_both_readings_to_be_real_and_different_dates() -> None:
    assert [k.value for k in swap_keys("1990-07-03")] == [k.value for k in swap_keys("1990-03-07")]
    assert len(swap_keys("1990-03-07")) == 1
    assert swap_keys("1990-03-13") == []  # 13 is no month
    assert swap_keys("1990-03-31") == []
    assert swap_keys("1990-05-05") == []  # the swap is the same date
    # The swapped name is the exact one: a swapped date with a typo in the name does not meet.
    assert (
        strongest_shared(person("Ahmad Utomo", "1990-03-07"), person("Ahmad Utama", "1990-07-03"))
        is None
    )


def test_twins_or_namesakes_who_differ_only_in_a_middle_name_meet_as_a_variant() -> None:
    # The cost of matching a dropped middle name: a possible match for a person to rule out.
    assert strongest_shared(person("Agus Budi Santoso"), person("Agus Joko Santoso")) == VARIANT


@pytest.mark.parametrize(
    ("field", "a", "b"),
    [
        ("national_id", "1318609139099603", "131860.913909.9603"),
        ("national_id", "3201234567890001", "3201 2345 6789 0001"),
        ("passport", "B2976225", " b29 76225"),
        ("email", "ahmad.utomo@example.org", " AHMAD.UTOMO@EXAMPLE.ORG"),
        ("phone", "081295753514", "+62 812-9575-3514"),
        ("phone", "0812 9575 3514", "+6281295753514"),
    ],
)
def test_documents_written_differently_match_strongly(field: str, a: str, b: str) -> None:
    # Different names and dates: only the document can match.
    rec_a = person("Ahmad Utomo", "2001-01-03", **{field: a})
    rec_b = person("Someone Else", "1968-05-14", **{field: b})
    assert strongest_shared(rec_a, rec_b) == STRONG


def test_same_document_number_from_another_country_does_not_match() -> None:
    a = person("Ahmad Utomo", passport="B2976225")
    b = person("Ahmad Utama", "1990-01-01", passport="B2976225", passport_country="MY")
    assert strongest_shared(a, b) is None


def test_phone_in_local_form_is_read_in_the_nationality() -> None:
    local = {"full_name": "A B", "date_of_birth": DOB, "nationality": "MY", "phone": "012-345 6789"}
    keys = [k for k in derive_keys(local) if k.kind == "phone"]
    assert [k.value for k in keys] == [b"refcheck/v1/phone/+60123456789"]


def test_key_values_have_the_documented_layout() -> None:
    keys = derive_keys(
        person(
            "Muhammad Soekarno, Drs.",
            "1970-05-17",
            national_id="3201.2345.6789.0001",
            passport="b 123 4567",
            email=" Ahmad@Example.ORG ",
            phone="0812-9575-3514",
        )
    )
    by_kind = {k.kind: k.value for k in reversed(keys)}
    assert by_kind["national_id"] == b"refcheck/v1/national_id/ID/3201234567890001"
    assert by_kind["passport"] == b"refcheck/v1/passport/ID/B1234567"
    assert by_kind["email"] == b"refcheck/v1/email/ahmad@example.org"
    assert by_kind["phone"] == b"refcheck/v1/phone/+6281295753514"
    assert (
        by_kind["name_dob"]
        == f"refcheck/v1/name_dob/t{TABLES_VERSION}/1970-05-17/muhamad sukarno".encode()
    )
    assert by_kind["name_dob_variant"] == (
        f"refcheck/v1/name_dob_variant/t{TABLES_VERSION}/skel/1970-05-17/mhmd skrn".encode()
    )
    assert by_kind["name_dob_first_last"] == (
        f"refcheck/v1/name_dob_first_last/t{TABLES_VERSION}/1970-05-17/muhamad sukarno".encode()
    )
    assert by_kind["name_dob_abbrev"] == (
        f"refcheck/v1/name_dob_abbrev/t{TABLES_VERSION}/1970-05-17/m sukarno".encode()
    )
    assert "name_dob_swap" not in by_kind  # the 17th is no month


def test_round_2_key_values_have_the_documented_layout() -> None:
    keys = derive_keys(person("Siti Nur Aisyah", "1990-07-03"))
    values = {k.kind: k.value for k in keys}
    t = f"t{TABLES_VERSION}"
    assert (
        values["name_dob_first_last"]
        == f"refcheck/v1/name_dob_first_last/{t}/1990-07-03/aisa siti".encode()
    )
    assert values["name_dob_swap"] == (
        f"refcheck/v1/name_dob_swap/{t}/1990-03-07/1990-07-03/aisa nur siti".encode()
    )
    assert "name_dob_abbrev" not in values
    assert {k.strength for k in keys if k.kind.startswith("name_dob_")} == {VARIANT}


def test_keys_are_ordered_strongest_first_with_documents_then_name() -> None:
    keys = derive_keys(person("Cucu Siti Setiawan", email="c@example.org", phone="081234567890"))
    ranks = [k.strength.rank for k in keys]
    assert ranks == sorted(ranks)
    assert [k.kind for k in keys[:3]] == ["email", "phone", "name_dob"]
    assert {k.kind: k.strength for k in keys} == {
        "email": STRONG,
        "phone": STRONG,
        "name_dob": EXACT,
        "name_dob_variant": VARIANT,
        "name_dob_first_last": VARIANT,
    }


@pytest.mark.parametrize(
    ("name", "dob"), [("Cucu Siti Setiawan", DOB), ("Muhammad Rizki Pratama", "1990-03-07")]
)
def test_every_name_key_carries_the_date_of_birth_and_the_tables_version(
    name: str, dob: str
) -> None:
    keys = derive_keys(person(name, dob))
    name_keys = [k for k in keys if k.kind.startswith("name_dob")]
    assert len(name_keys) == len(keys)
    for key in name_keys:
        assert f"/t{TABLES_VERSION}/".encode() in key.value
        assert f"/{dob}/".encode() in key.value


def test_keys_are_deterministic_and_unique() -> None:
    record = person("Sjaifoel Soetrisno Koesoemawati", email="x@example.org")
    first, second = derive_keys(record), derive_keys(dict(record))
    assert first == second
    assert len({k.value for k in first}) == len(first)
    assert all(k.value.startswith(KEY_PREFIX) for k in first)


def test_a_long_name_with_every_document_is_cut_at_the_cap_keeping_the_strongest() -> None:
    record = person(
        "Raden Mas Sjaifoel Soetrisno Koesoemawardhani Hadiwidjojo Poerwokoesoemo",
        "1967-08-05",
        national_id="3201234567890001",
        passport="B2976225",
        email="x@example.org",
        phone="081234567890",
    )
    keys = derive_keys(record)
    assert len(keys) == MAX_KEYS_PER_PERSON
    assert [k.strength for k in keys[:5]] == [STRONG] * 4 + [EXACT]
    # The cut falls on the typo deletions, after every other variant form.
    assert {"name_dob_first_last", "name_dob_swap"} <= {k.kind for k in keys}
    # Both sides cut the same way, so the same record still matches itself in full.
    assert derive_keys(record) == keys


def test_a_person_object_and_its_dict_give_the_same_keys() -> None:
    record = person("Ayu Cahyono", phone="081242284650")
    assert derive_keys(Person.from_dict(record)) == derive_keys(record)


def test_an_invalid_record_is_refused_not_keyed() -> None:
    with pytest.raises(InvalidPersonError):
        derive_keys({"full_name": "Ahmad Utomo", "nationality": "ID"})


def test_key_repr_does_not_show_the_identifier() -> None:
    key = derive_keys(person("Ahmad Utomo"))[0]
    assert "utomo" not in repr(key).lower()
    assert repr(key).startswith("Key(kind='name_dob', strength='exact'")


_names = st.lists(
    st.text(alphabet=st.characters(codec="utf-8", categories=["L", "M", "P", "Zs"]), min_size=1),
    min_size=1,
    max_size=6,
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(name=_names, dob=st.dates(dt.date(1900, 1, 1), dt.date(2020, 12, 31)))
def test_any_name_gives_at_most_the_cap_of_unique_keys_or_a_clean_refusal(
    name: str, dob: dt.date
) -> None:
    record = {"full_name": name, "date_of_birth": dob.isoformat(), "nationality": "ID"}
    try:
        keys = derive_keys(record)
    except InvalidPersonError as exc:
        # The refusal names the rule, never the value (checked where a coincidence with the
        # message's own words is impossible).
        if len(name.strip()) >= 4:
            assert name.strip() not in str(exc)
        return
    assert 2 <= len(keys) <= MAX_KEYS_PER_PERSON
    assert len({k.value for k in keys}) == len(keys)
    assert all(isinstance(k, Key) and k.value.isascii() for k in keys)


@settings(max_examples=100, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["ahmad", "siti", "nur", "utomo", "cahyono", "rizki"]),
        min_size=1,
        max_size=4,
    ),
    upper=st.lists(st.booleans(), min_size=4, max_size=4),
    sep=st.sampled_from([" ", "  ", " - ", "-", ". "]),
)
def test_case_spacing_and_separators_never_change_the_exact_key(
    words: list[str], upper: list[bool], sep: str
) -> None:
    plain = " ".join(words)
    noisy = sep.join(w.upper() if u else w.capitalize() for w, u in zip(words, upper, strict=False))
    exact = [k for k in derive_keys(person(plain)) if k.strength == EXACT]
    assert exact == [k for k in derive_keys(person(" " + noisy + " ")) if k.strength == EXACT]
