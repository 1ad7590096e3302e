"""The console's pure helpers for the secretariat's and the re-screening pages: the retention
table, reading a member's public keys, the re-screening form's consent choices, shared form
hashes and month names. Each rule shown accepting the good case and refusing the bad one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("starlette")

from client_sdk.cli.rescreen import Row  # noqa: E402
from client_sdk.console import i18n  # noqa: E402
from client_sdk.console.admin import read_org_keys, retention_table  # noqa: E402
from client_sdk.console.rescreen import MemoryCodes, RescreenForm, shared_form_lines  # noqa: E402
from client_sdk.keystore import Keystore  # noqa: E402
from client_sdk.pinning import org_key_fingerprint  # noqa: E402

X = "1a" * 32
ED = "2b" * 32
HASH = hashlib.sha256(b"form").hexdigest()


@pytest.fixture(autouse=True)
def english():
    i18n.use_language("en")


# -- retention table -------------------------------------------------------------------------


def test_the_retention_table_has_a_row_per_month_and_a_column_per_member():
    overview = {
        "as_of": "2026-12-07",
        "live_cases": 6,
        "months": [
            {"month": "2026-11", "live_cases": 1},
            {"month": "2031-05", "live_cases": 3},
            {"month": "2030-01", "live_cases": 2},
        ],
        "organisations": [
            {
                "org_id": "a",
                "short_name": "org-a",
                "live_cases": 4,
                "months": [
                    {"month": "2031-05", "live_cases": 3},
                    {"month": "2026-11", "live_cases": 1},
                ],
            },
            {
                "org_id": "b",
                "short_name": "org-b",
                "live_cases": 2,
                "months": [{"month": "2030-01", "live_cases": 2}],
            },
        ],
    }
    table = retention_table(overview)
    assert table["members"] == ["org-a", "org-b"]
    assert [r["month"] for r in table["rows"]] == ["2026-11", "2030-01", "2031-05"]
    assert [r["counts"] for r in table["rows"]] == [[1, 0], [0, 2], [3, 0]]
    assert [r["total"] for r in table["rows"]] == [1, 2, 3]
    assert table["totals"] == [4, 2] and table["total"] == 6
    # A month before the current one is past (its cases should be gone); the current is not.
    assert [r["past"] for r in table["rows"]] == [True, False, False]
    assert not retention_table({**overview, "as_of": "2026-11-30"})["rows"][0]["past"]


def test_an_empty_retention_overview_is_an_empty_table():
    table = retention_table({"as_of": "2026-12-07", "months": [], "organisations": []})
    assert table == {"members": [], "rows": [], "totals": [], "total": 0}


def test_months_are_named_in_the_chosen_language():
    i18n.use_language("id")
    assert i18n.fmt_month("2031-05") == "Mei 2031"
    i18n.use_language("en")
    assert i18n.fmt_month("2031-05") == "May 2031"
    assert i18n.fmt_month("2031-13") == "2031-13"  # not a month: shown as it is


# -- a member's public keys ------------------------------------------------------------------


def pasted(x: str = X, ed: str = ED) -> dict[str, str]:
    return {"x25519_public_key": x, "ed25519_public_key": ed}


def test_pasted_keys_are_read_with_their_fingerprint():
    given = read_org_keys(pasted(X.upper()[:32] + "\n " + X[32:]), None, {})
    assert given.errors == {}
    assert given.keys == pasted()
    assert given.fingerprint == org_key_fingerprint(bytes.fromhex(X), bytes.fromhex(ED))


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        (pasted("abc"), "x25519_public_key"),
        (pasted(ED, "g" * 64), "ed25519_public_key"),
        (pasted("0" * 64), "x25519_public_key"),
        (pasted(""), "x25519_public_key"),
        (pasted(X, ""), "ed25519_public_key"),
        (pasted(X, X), "ed25519_public_key"),
    ],
)
def test_pasted_keys_that_are_not_two_public_keys_are_refused_beside_their_field(keys, field):
    given = read_org_keys(keys, None, {})
    assert field in given.errors and given.keys == {}


def test_the_keys_on_record_already_are_refused():
    assert "x25519_public_key" in read_org_keys(pasted(), None, pasted()).errors
    assert read_org_keys(pasted(), None, pasted(X, "3" * 64)).errors == {}


def test_a_file_and_pasted_keys_together_are_refused():
    document = json.dumps(pasted()).encode()
    assert "public_file" in read_org_keys(pasted(), document, {}).errors
    assert read_org_keys(pasted("", ""), document, {}).keys == pasted()


def test_the_public_part_of_a_sealed_keystore_is_read(tmp_path: Path):
    store = Keystore.generate()
    path = tmp_path / "keys.json"
    store.save(path, passphrase="correct horse")
    given = read_org_keys({}, path.read_bytes(), {})
    public = store.public_keys()
    assert given.errors == {}
    assert given.keys == {k: public[k] for k in ("x25519_public_key", "ed25519_public_key")}


def test_keys_show_json_output_is_read_and_its_fingerprint_line_checked():
    public = Keystore.generate().public_keys()
    fingerprint = org_key_fingerprint(
        bytes.fromhex(public["x25519_public_key"]), bytes.fromhex(public["ed25519_public_key"])
    )
    shown = {"keystore": "k.json", **public, "org_fingerprint": fingerprint}
    assert read_org_keys({}, json.dumps(shown).encode(), {}).errors == {}
    changed = {**shown, "x25519_public_key": X}
    assert "public_file" in read_org_keys({}, json.dumps(changed).encode(), {}).errors


def test_a_keystore_with_private_keys_in_the_clear_is_refused(tmp_path: Path):
    path = tmp_path / "clear.json"
    Keystore.generate().save(path, passphrase=None)
    given = read_org_keys({}, path.read_bytes(), {})
    assert "private keys" in given.errors["public_file"] and given.keys == {}


def test_an_auth_only_keystore_is_refused(tmp_path: Path):
    path = tmp_path / "auth.json"
    Keystore.generate(auth_only=True).save(path, passphrase="correct horse")
    assert "--auth-only" in read_org_keys({}, path.read_bytes(), {}).errors["public_file"]


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[1, 2]", b'{"name": "x"}', b" " * (64 * 1024 + 1), "\u00e9".encode("latin-1")],
)
def test_a_file_that_is_not_a_public_key_file_is_refused(data: bytes):
    assert "public_file" in read_org_keys({}, data, {}).errors


# -- re-screening: consents ------------------------------------------------------------------


def test_one_form_for_all_only_with_the_explicit_choice():
    assert RescreenForm.read(True, True, HASH, None).errors == {}
    assert "form_sha256" in RescreenForm.read(True, False, HASH, None).errors
    assert "form_sha256" in RescreenForm.read(True, False, "", HASH).errors


def test_the_same_form_choice_needs_a_form_and_consents_to_record():
    assert "form_sha256" in RescreenForm.read(True, True, "", None).errors
    assert RescreenForm.read(True, True, "", HASH).form_sha256 == HASH
    assert "same_form_for_all" in RescreenForm.read(False, True, HASH, None).errors


def test_a_form_hash_must_be_a_sha256_and_agree_with_the_uploaded_form():
    assert "form_sha256" in RescreenForm.read(True, True, "abc", None).errors
    assert "form_sha256" in RescreenForm.read(True, True, "f" * 64, HASH).errors
    assert RescreenForm.read(True, True, HASH.upper(), HASH).errors == {}


def test_without_recording_consents_nothing_is_asked():
    chosen = RescreenForm.read(False, False, "", None)
    assert chosen.errors == {} and not chosen.options().record_consents


def test_rows_sharing_a_form_hash_are_found():
    rows = [
        Row(2, "A", {}, None, form_sha256="a" * 64),
        Row(3, "B", {}, None, form_sha256="b" * 64),
        Row(4, "C", {}, None, form_sha256="a" * 64),
    ]
    assert shared_form_lines(rows) == [2, 4]
    assert shared_form_lines(rows[:2]) == []


def test_lookup_codes_stay_in_memory():
    codes = MemoryCodes(";")
    codes.add("S-1", "ABCD-EFGH", "consent-1")
    codes.sync()
    codes.close()
    assert codes.rows == [("S-1", "ABCD-EFGH", "consent-1")] and codes.written == 1
    assert codes._fh is None  # no file was opened
