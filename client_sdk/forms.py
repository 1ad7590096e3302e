"""The applicant declaration and consent form: rendered from the templates in `policies/forms/`,
and fingerprinted (SHA-256) for the consent receipt.

One body template per language, with the same sections and questions (the members asked for a
single standard form in Bahasa Indonesia and English so nobody is asked twice). The body uses
only basic HTML, so the very same text becomes the HTML page and, through fpdf2, the PDF: there
is no second copy of the wording to drift. Figures (validity, check budget, retention) come from
the network policy shipped with the package, so the form never promises other limits than the
server enforces (a check budget above the policy's is refused).

The PDF embeds DejaVu Sans (shipped in `policies/forms/fonts/` with its licence) and shapes its
text with HarfBuzz, so any organisation name prints as written: `’`, `–`, Vietnamese, Arabic
script. Every page carries the form number and "page N of M"; the declaration (section 8) and
the signatures (section 9) are kept on one page, so a signed last page cannot be paired with
other answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import html as html_lib
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2

from client_sdk.errors import InvalidInput

__all__ = ["FORM_VERSION", "LANGUAGES", "FormOptions", "render_form", "sha256_file"]

#: Bumped whenever the wording changes; printed on the form, so a receipt's form hash and the
#: version on the signed paper identify the text the applicant saw.
FORM_VERSION = "RC-2/2026-12"
LANGUAGES = ("id", "en")
Format = Literal["html", "pdf"]

_TITLES = {
    "en": "Applicant Declaration and Consent to a Misconduct Reference Check",
    "id": "Pernyataan Pelamar dan Persetujuan Pemeriksaan Referensi Pelanggaran",
}
_NETWORK = {"en": "the PSEAH Network", "id": "Jaringan PSEAH"}
_CATEGORY_LABELS = {
    "sexual_exploitation": ("sexual exploitation", "eksploitasi seksual"),
    "sexual_abuse": ("sexual abuse", "kekerasan seksual"),
    "sexual_harassment": ("sexual harassment", "pelecehan seksual"),
}
_PAGE = {"en": ("Form", "page", "of"), "id": ("Formulir", "halaman", "dari")}
# A fixed timestamp makes the blank PDF byte-for-byte reproducible, so two offices printing the
# same version of the form get the same fingerprint.
_PDF_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: In the body templates: from here to the end is printed on one page of the PDF.
KEEP_TOGETHER = "<!-- keep-together"
_FONT = "DejaVuSans"
_BOX = re.compile(r'<p class="box">(.*?)</p>', re.DOTALL)
_BR = re.compile(r"<br\s*/?>")
_TAG = re.compile(r"<[^>]+>")
_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}


@dataclass(frozen=True)
class FormOptions:
    """What to fill in on the form; every field may stay blank for a printed stock form.

    Usage::

        FormOptions(org_name="Yayasan Contoh", position_ref="POS-17", purpose="recruitment")
    """

    org_name: str | None = None
    position_ref: str | None = None
    applicant_ref: str | None = None
    purpose: Literal["recruitment", "rescreening"] = "recruitment"
    expires_on: date | None = None
    max_checks: int | None = None
    network_name: str | None = None


def _policy() -> dict[str, Any]:
    text = resources.files("policies").joinpath("network.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: resources.files("policies").joinpath("forms", name).read_text("utf-8")
    )
    # Autoescape: an organisation name with "<" must print as text, not become markup.
    return jinja2.Environment(
        loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )


def _context(lang: str, options: FormOptions) -> dict[str, Any]:
    policy = _policy()
    rule = policy["consent_purposes"][options.purpose]
    if options.max_checks is not None and not 1 <= options.max_checks <= rule["max_checks"]:
        # The form would promise the applicant a budget the server refuses to record.
        raise InvalidInput(
            f"a {options.purpose} consent allows 1 to {rule['max_checks']} checks under the "
            "network policy"
        )
    retention = [
        {
            "label_en": _CATEGORY_LABELS.get(name, (name, name))[0],
            "label_id": _CATEGORY_LABELS.get(name, (name, name))[1],
            "years": spec["max_retention_years"],
            "child_years": spec["max_retention_years_child_victim"],
        }
        for name, spec in policy["categories"].items()
    ]
    return {
        "lang": lang,
        "title": _TITLES[lang],
        "form_version": FORM_VERSION,
        "policy_version": policy["version"],
        "network_name": options.network_name or _NETWORK[lang],
        "org_name": options.org_name,
        "position_ref": options.position_ref,
        "applicant_ref": options.applicant_ref,
        "purpose": options.purpose,
        "expires_on": options.expires_on.isoformat() if options.expires_on else None,
        "max_checks": options.max_checks
        or (1 if options.purpose == "recruitment" else rule["max_checks"]),
        "validity_days": rule["max_validity_days"],
        "retention": retention,
    }


def render_body(lang: str, options: FormOptions | None = None) -> str:
    """The form's body as basic HTML (no page wrapper)."""
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    env = _environment()
    return env.get_template(f"declaration.{lang}.html.j2").render(
        _context(lang, options or FormOptions())
    )


def render_form(lang: str, fmt: Format = "html", options: FormOptions | None = None) -> bytes:
    """Render the form in `lang` ("id" or "en") as an HTML page or a PDF document."""
    options = options or FormOptions()
    body = render_body(lang, options)
    if fmt == "html":
        page = _environment().get_template("page.html.j2")
        context = _context(lang, options)
        return page.render(**context, body=jinja2.utils.markupsafe.Markup(body)).encode("utf-8")
    if fmt == "pdf":
        return _pdf(body, _TITLES[lang], lang)
    raise ValueError("format must be html or pdf")


def _pdf(body: str, title: str, lang: str) -> bytes:
    from fpdf import FPDF
    from fpdf.fonts import TTFFont

    label, page, of = _PAGE[lang]

    class FormPDF(FPDF):
        def footer(self) -> None:
            # On every page: which form, and which page of how many ({nb} is filled in at the
            # end), so a page that comes loose can be put back.
            self.set_y(-12)
            self.set_font(_FONT, size=8)
            self.set_text_color(70)
            self.cell(
                0, 5, f"{label} {FORM_VERSION} - {page} {self.page_no()} {of} {{nb}}", align="C"
            )

    pdf = FormPDF(format="A4")
    pdf.set_creation_date(_PDF_EPOCH)
    pdf.set_title(title)
    pdf.set_lang(lang)
    pdf.set_creator("refcheck " + FORM_VERSION)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(18, 16, 18)
    fonts = resources.files("policies").joinpath("forms", "fonts")
    with contextlib.ExitStack() as stack:
        for style, name in _FONT_FILES.items():
            pdf.add_font(_FONT, style, str(stack.enter_context(resources.as_file(fonts / name))))
        loaded = [f for f in pdf.fonts.values() if isinstance(f, TTFFont)]
        # fpdf2 reads the font files lazily and never closes them.
        stack.callback(lambda: [f.ttfont.close() for f in loaded])
        _refuse_missing_glyphs(body, [f.cmap for f in loaded])
        # Joined letters and right-to-left order for Arabic script, marks placed on Vietnamese.
        pdf.set_text_shaping(True)
        pdf.add_page()
        pdf.set_font(_FONT, size=10)
        main, marker, last = body.replace("&nbsp;", " ").partition(KEEP_TOGETHER)
        _write(pdf, main)
        if marker:
            last = marker + last
            # Rendered once off the record: if the declaration and signatures would run over a
            # page end, they start on a fresh page instead.
            with pdf.offset_rendering() as trial:
                _write(trial, last)
            if trial.page_break_triggered:
                pdf.add_page()
            _write(pdf, last)
        return bytes(pdf.output())


def _refuse_missing_glyphs(body: str, cmaps: list[Any]) -> None:
    """A character the font lacks would print as a blank on a legal document: refuse instead
    (DejaVu Sans covers Latin, Vietnamese, Greek, Cyrillic and Arabic script, not CJK)."""
    text = html_lib.unescape(_TAG.sub("", body))
    missing = sorted(
        {
            c
            for c in text
            if unicodedata.category(c)[0] not in "CZ" and any(ord(c) not in m for m in cmaps)
        }
    )
    if missing:
        raise InvalidInput(
            f"the PDF form's font cannot print {', '.join(missing[:8])}: write that name in a "
            "script the font covers, or use the HTML form"
        )


def _write(pdf: Any, html: str) -> None:
    """The body through fpdf2's HTML renderer, and its `<p class="box">` paragraphs as framed
    cells (the renderer draws no borders): same wording, one template."""
    parts = _BOX.split(html)
    for index, part in enumerate(parts):
        if index % 2 == 0:
            if part.strip():
                pdf.write_html(part, tag_styles=None)
            continue
        lines = [" ".join(html_lib.unescape(line).split()) for line in _BR.split(part)]
        pdf.ln(2)
        pdf.multi_cell(0, 5.5, "\n".join(lines), border=1, padding=2.5, align="L")
        pdf.ln(3)


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """The SHA-256 (hex) of a file, e.g. the scanned or digitally signed form; this is what a
    consent receipt's `form_sha256` records."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
