"""The declaration and consent form: both languages, both formats, and the fingerprint."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from client_sdk.forms import FORM_VERSION, FormOptions, render_body, render_form, sha256_file


@pytest.mark.parametrize("lang", ["id", "en"])
def test_html_form_names_the_six_core_principles_and_three_questions(lang: str) -> None:
    body = render_body(lang)
    principles = body.split("<h2>3.")[0]
    assert principles.count("<li>") == 6
    # The declaration is section 8, just before the signatures (kept on one page in the PDF).
    questions = body.split("<h2>8.")[1].split("<h2>9.")[0]
    assert questions.count("<li>") == 3
    assert FORM_VERSION in body


def test_both_languages_have_the_same_sections() -> None:
    heads = {lang: re.findall(r"<h2>(\d+)\.", render_body(lang)) for lang in ("id", "en")}
    assert heads["id"] == heads["en"] == [str(n) for n in range(1, 10)]


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ["withdraw", "dispute", "Law No. 27 of 2022", "substantiated", "years"]),
        ("id", ["menarik persetujuan", "keberatan", "Nomor 27 Tahun 2022", "terbukti", "tahun"]),
    ],
)
def test_form_says_what_how_long_and_how_to_withdraw_and_dispute(
    lang: str, words: list[str]
) -> None:
    body = render_body(lang)
    for word in words:
        assert word in body, word


def test_form_figures_come_from_the_network_policy() -> None:
    body = render_body("en", FormOptions(purpose="rescreening"))
    assert "<b>365</b> days" in body and "<b>53</b>" in body
    body = render_body("en", FormOptions(purpose="recruitment"))
    assert "<b>90</b> days" in body and "at most 10 years" in body


def test_filled_in_values_are_escaped() -> None:
    html = render_form("en", "html", FormOptions(org_name="<script>x</script>")).decode()
    assert "<script>x" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("lang", ["id", "en"])
def test_pdf_renders_and_is_reproducible(lang: str) -> None:
    first = render_form(lang, "pdf", FormOptions(org_name="Yayasan Contoh"))
    assert first.startswith(b"%PDF-")
    assert first == render_form(lang, "pdf", FormOptions(org_name="Yayasan Contoh"))


def test_unknown_language_or_format_is_refused() -> None:
    with pytest.raises(ValueError):
        render_form("fr", "html")
    with pytest.raises(ValueError):
        render_form("en", "docx")  # type: ignore[arg-type]


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "signed.pdf"
    data = render_form("id", "pdf")
    path.write_bytes(data)
    assert sha256_file(path, chunk=1000) == hashlib.sha256(data).hexdigest()
