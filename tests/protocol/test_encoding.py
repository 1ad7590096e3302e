"""`lp`, `i2osp` and RFC 8785 JSON (protocol/encoding.py), pinned against the RFC's own examples."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import canonical_json, i2osp, lp
from protocol.errors import InvalidInputError


def test_lp_prefixes_the_utf8_length_in_two_bytes() -> None:
    assert lp("") == b"\x00\x00"
    assert lp("ab") == b"\x00\x02ab"
    assert lp("é") == b"\x00\x02\xc3\xa9"


def test_lp_refuses_more_than_65535_bytes_and_non_strings() -> None:
    assert len(lp("x" * 65535)) == 65537
    with pytest.raises(InvalidInputError):
        lp("x" * 65536)
    with pytest.raises(InvalidInputError):
        lp(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        lp("\ud800")


def test_i2osp_refuses_what_does_not_fit() -> None:
    assert i2osp(258, 2) == b"\x01\x02"
    for bad in (-1, 65536):
        with pytest.raises(InvalidInputError):
            i2osp(bad, 2)
    with pytest.raises(InvalidInputError):
        i2osp(True, 2)


def test_rfc8785_string_escaping_example() -> None:
    # RFC 8785 section 3.2.2.2: the input string and its canonical serialisation.
    value = "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/"
    assert canonical_json(value) == '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'.encode()


def test_rfc8785_key_order_is_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: U+1F600 sorts before U+FB33 in UTF-16, after it by code point.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_canonical_json_of_literals_integers_and_nesting() -> None:
    value = {"b": [1, -2, True, False, None], "a": {"d": "x", "c": 0}}
    assert canonical_json(value) == b'{"a":{"c":0,"d":"x"},"b":[1,-2,true,false,null]}'
    assert canonical_json(2**53 - 1) == b"9007199254740991"


@pytest.mark.parametrize("bad", [1.5, 2**53, -(2**53), b"x", {1: "x"}, "\udc00", object()])
def test_canonical_json_refuses_what_rfc8785_would_write_differently(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        canonical_json(bad)


@settings(deadline=None, max_examples=100)
@given(
    st.dictionaries(
        st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"])),
        st.text(alphabet=st.characters(exclude_categories=["Cs"]))
        | st.booleans()
        | st.none()
        | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    )
)
def test_canonical_json_of_bmp_keys_is_sorted_compact_json_dumps(value: dict) -> None:
    # For keys in the Basic Multilingual Plane UTF-16 order is code point order, so RFC 8785 is
    # exactly compact sorted json.dumps with literal non-ASCII.
    expected = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert canonical_json(value) == expected.encode()
