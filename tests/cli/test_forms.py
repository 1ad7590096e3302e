"""The PDF declaration form as a person holds it: any organisation name prints (an embedded
Unicode font, shipped with its licence), every page names the form and its page number, the
declaration and the signatures share a page, with a box for the lookup code and a line for the
organisation's signatory; a check budget above the policy's is refused."""

from __future__ import annotations

import io
import re
from importlib import resources
from pathlib import Path

import pypdf
import pytest

import client_sdk.forms as forms
from client_sdk.cli import ExitCode
from client_sdk.errors import InvalidInput
from client_sdk.forms import FORM_VERSION, FormOptions, render_body, render_form
from tests.cli.conftest import Run

#: Per language: the footer of every page, the declaration's heading, what the signature block
#: holds (its heading, the applicant's signature, the lookup-code box, the organisation's line).
FOOTER = {
    "en": rf"Form {re.escape(FORM_VERSION)} - page (\d+) of (\d+)",
    "id": rf"Formulir {re.escape(FORM_VERSION)} - halaman (\d+) dari (\d+)",
}
DECLARATION = {"en": "8. Your declaration", "id": "8. Pernyataan Anda"}
BLOCK = {
    "en": ["9. Signature", "Signature:", "Lookup code:", "For the organisation"],
    "id": ["9. Tanda tangan", "Tanda tangan:", "Kode pencarian:", "Untuk organisasi"],
}
NAMES = [
    "Yayasan Pulih – Women’s Crisis Centre",
    "Hội Chữ thập đỏ Việt Nam",
    "جمعية الهلال الأحمر",
]


def pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def pages_with(texts: list[str], needle: str) -> list[int]:
    return [n for n, text in enumerate(texts) if needle in text]


@pytest.mark.parametrize("name", NAMES)
def test_any_organisation_name_prints_in_the_embedded_font(name: str) -> None:
    pdf = render_form("en", "pdf", FormOptions(org_name=name, purpose="rescreening"))
    assert b"/FontFile2" in pdf  # the font itself is in the file, not only its name
    assert re.search(rb"/BaseFont /[A-Z]{6}\+DejaVuSans", pdf)
    assert not re.search(rb"/BaseFont /(Helvetica|Arial|Times)", pdf)
    first = pages(pdf)[0]
    if name.isascii() or "Việt" in name or "’" in name:
        assert name in first
    else:  # right-to-left: read back in the order it is drawn, every letter present
        assert set(name.replace(" ", "")) <= set(first)


def test_a_name_the_font_cannot_print_is_refused_not_left_blank() -> None:
    with pytest.raises(InvalidInput, match="cannot print"):
        render_form("en", "pdf", FormOptions(org_name="ยูนิเซฟ"))
    assert "ยูนิเซฟ" in render_form("en", "html", FormOptions(org_name="ยูนิเซฟ")).decode()


LONG_NAME = "Yayasan " + "Kemanusiaan Nusantara " * 12


@pytest.mark.parametrize(
    ("lang", "purpose", "name"),
    [
        ("en", "recruitment", ""),
        ("en", "rescreening", LONG_NAME),
        ("id", "recruitment", NAMES[0]),
        ("id", "rescreening", LONG_NAME),
    ],
)
def test_pages_are_numbered_and_the_declaration_shares_the_signatures_page(
    lang: str, purpose: str, name: str
) -> None:
    options = FormOptions(org_name=name or None, purpose=purpose)  # type: ignore[arg-type]
    texts = pages(render_form(lang, "pdf", options))
    assert len(texts) > 1
    for number, text in enumerate(texts, start=1):
        found = re.search(FOOTER[lang], text)
        assert found, (number, text[-200:])
        assert (int(found.group(1)), int(found.group(2))) == (number, len(texts))
    (page,) = pages_with(texts, DECLARATION[lang])
    for part in BLOCK[lang]:
        assert pages_with(texts, part) == [page], part


def test_without_keeping_them_together_the_signatures_would_be_on_another_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bad case the keep-together step prevents: in the plain flow the declaration ends one
    page and the signatures start the next."""
    monkeypatch.setattr(forms, "KEEP_TOGETHER", "<!-- no such marker")
    texts = pages(render_form("en", "pdf"))
    assert pages_with(texts, "8. Your declaration") != pages_with(texts, "Signature:")


@pytest.mark.parametrize("lang", ["en", "id"])
def test_html_form_has_the_lookup_code_box_and_the_signatory_line(lang: str) -> None:
    body = render_body(lang)
    box = re.search(r'<p class="box">(.*?)</p>', body, re.DOTALL)
    assert box and "_" * 6 + " - " + "_" * 6 in box.group(1)
    assert BLOCK[lang][3] in body
    assert body.index("<h2>8.") > body.index("<h2>7.")  # the declaration comes last


def test_the_font_ships_with_its_licence() -> None:
    fonts = resources.files("policies").joinpath("forms", "fonts")
    licence = fonts.joinpath("LICENSE").read_text(encoding="utf-8")
    assert "Bitstream Vera Fonts Copyright" in licence and "Arev Fonts Copyright" in licence
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
        assert fonts.joinpath(name).read_bytes()[:4] == b"\x00\x01\x00\x00"  # a TrueType file
        assert name in licence


def test_a_check_budget_above_the_policy_is_refused() -> None:
    with pytest.raises(InvalidInput, match="1 to 53 checks"):
        render_form("en", "html", FormOptions(purpose="rescreening", max_checks=54))
    with pytest.raises(InvalidInput, match="1 to 5 checks"):
        render_form("en", "pdf", FormOptions(purpose="recruitment", max_checks=6))
    assert "<b>53</b>" in render_body("en", FormOptions(purpose="rescreening", max_checks=53))


def test_form_render_refuses_max_checks_above_the_policy(offline_run: Run, tmp_path: Path) -> None:
    out = tmp_path / "form.pdf"
    result = offline_run(
        "form", "render", "--format", "pdf", "--purpose", "rescreening", "--max-checks", "54",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == ExitCode.USAGE
    assert "53 checks" in " ".join(result.output.split()) and not out.exists()
