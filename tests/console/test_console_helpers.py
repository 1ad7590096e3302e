"""The console's pure helpers for the secretariat's and the re-screening pages: the retention
table, the answer-times table and histogram, reading a member's public keys, the re-screening
form's consent choices, shared form hashes and month names. Each rule shown accepting the good
case and refusing the bad one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("starlette")

from client_sdk.cli.rescreen import Row  # noqa: E402
from client_sdk.console import i18n  # noqa: E402
from client_sdk.console.admin import (  # noqa: E402
    answer_times_view,
    read_org_keys,
    retention_table,
)
from client_sdk.console.charts import histogram  # noqa: E402
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


# -- answer times ----------------------------------------------------------------------------

BUCKETS = [
    "early_7_plus",
    "early_3_to_6",
    "early_0_to_2",
    "late_1_to_3",
    "late_4_plus",
    "open_overdue",
    "expired",
]


def answer_times(months: dict[str, dict[str, int]]) -> dict[str, object]:
    """A `GET /v1/stats/answer-times` answer for 2026 with `months`' counts, the rest 0."""
    every = [f"2026-{m:02d}" for m in range(1, 13)]
    counts = {m: {b: months.get(m, {}).get(b, 0) for b in BUCKETS} for m in every}
    return {
        "year": 2026,
        "as_of": "2026-12-07",
        "buckets": BUCKETS,
        "totals": {b: sum(c[b] for c in counts.values()) for b in BUCKETS},
        "months": [{"month": m, "counts": counts[m]} for m in every],
        "record_retention_days": 730,
    }


def test_the_answer_times_table_has_a_row_per_month_with_requests_and_the_years_totals():
    view = answer_times_view(
        answer_times(
            {
                "2026-03": {"early_7_plus": 4, "late_1_to_3": 1},
                "2026-07": {"expired": 2, "open_overdue": 1},
            }
        )
    )
    assert [c["bucket"] for c in view["columns"]] == BUCKETS
    assert view["columns"][3]["label"] == "Answered 1 to 3 days late"
    assert view["rows"] == [
        {"month": "2026-03", "counts": [4, 0, 0, 1, 0, 0, 0], "total": 5},
        {"month": "2026-07", "counts": [0, 0, 0, 0, 0, 1, 2], "total": 3},
    ]
    assert view["totals"] == [4, 0, 0, 1, 0, 1, 2] and view["total"] == 8
    assert view["retention_days"] == 730
    chart = str(view["chart"])
    assert 'aria-label="Disclosure answer times against the deadline"' in chart
    assert "<title>Answered 7 or more days before the deadline: 4</title>" in chart
    assert "<title>Expired without an answer: 2</title>" in chart


def test_no_request_due_is_no_chart_and_no_rows():
    view = answer_times_view(answer_times({}))
    assert view["rows"] == [] and view["chart"] is None and view["total"] == 0


def test_answer_time_buckets_are_named_in_indonesian_and_an_unknown_one_by_its_name():
    i18n.use_language("id")
    data = answer_times({"2026-01": {"late_4_plus": 1}})
    data["buckets"] = [*BUCKETS, "late_30_plus"]
    view = answer_times_view(data)
    labels = [c["label"] for c in view["columns"]]
    assert labels[4] == "Dijawab terlambat 4 hari atau lebih"
    assert labels[-1] == "late_30_plus"
    assert view["rows"][0]["counts"][-1] == 0


def test_the_histogram_writes_each_figure_and_wraps_long_labels():
    bars = [("Answered 4 or more days late", 3, "late"), ("x<y", 0, "?")] + [("b", 1, "good")] * 5
    svg = str(histogram("Times", bars))
    assert svg.startswith("<svg") and 'role="img"' in svg
    # Seven bars: the long label goes on several lines under its bar, the short ones on one.
    assert svg.count("<tspan") == 7 + 1
    assert '>Answered 4 or more</tspan><tspan x="' in svg
    assert ">3</text>" in svg and ">0</text>" in svg
    assert "x&lt;y" in svg and "x<y" not in svg  # escaped


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
