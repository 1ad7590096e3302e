"""The applicant declaration and consent form: rendered from the templates in `policies/forms/`,
and fingerprinted (SHA-256) for the consent receipt.

One body template per language, with the same sections and questions (the members asked for a
single standard form in Bahasa Indonesia and English so nobody is asked twice). The body uses
only basic HTML, so the very same text becomes the HTML page and, through fpdf2, the PDF: there
is no second copy of the wording to drift. Figures (validity, check budget, retention) come from
the network policy shipped with the package, so the form never promises other limits than the
server enforces.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2

__all__ = ["FORM_VERSION", "LANGUAGES", "FormOptions", "render_form", "sha256_file"]

#: Bumped whenever the wording changes; printed on the form, so a receipt's form hash and the
#: version on the signed paper identify the text the applicant saw.
FORM_VERSION = "RC-1/2026-11"
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
# A fixed timestamp makes the blank PDF byte-for-byte reproducible, so two offices printing the
# same version of the form get the same fingerprint.
_PDF_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


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

    pdf = FPDF(format="A4")
    pdf.set_creation_date(_PDF_EPOCH)
    pdf.set_title(title)
    pdf.set_lang(lang)
    pdf.set_creator("refcheck " + FORM_VERSION)
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_margins(18, 16, 18)
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    # The core PDF fonts cover Latin-1 only; the templates are written within it (Indonesian
    # and English need nothing else), and a stray character fails here rather than printing
    # as a blank on a legal document.
    pdf.write_html(body.replace("&nbsp;", " "), tag_styles=None)
    return bytes(pdf.output())


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """The SHA-256 (hex) of a file, e.g. the scanned or digitally signed form; this is what a
    consent receipt's `form_sha256` records."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
