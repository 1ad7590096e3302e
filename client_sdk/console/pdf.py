"""The holder's verified answer as a PDF for the HR file (fpdf2, already in the base install).

Written in the console's language; the text is transliterated to the PDF core font's
characters (an HR file needs the record, not the typography)."""

from __future__ import annotations

from typing import Any

from anyascii import anyascii
from fpdf import FPDF

from client_sdk.console.choices import choice_label
from client_sdk.console.i18n import fmt_date, fmt_datetime
from client_sdk.console.i18n import gettext_ as _
from client_sdk.disclosures import VerifiedAnswer

__all__ = ["answer_pdf"]


def _t(value: Any) -> str:
    return anyascii(str(value))


def answer_pdf(d: Any, answer: VerifiedAnswer) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(
        0, 9, _t(_("Disclosure answer (signature verified)")), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Helvetica", size=10)
    rows = [
        (_("Request"), d.id),
        (_("From"), answer.holder_org),
        (_("Requested"), fmt_datetime(d.created_at)),
        (_("Answered"), fmt_datetime(getattr(d, "answered_at", None))),
        (_("Answer"), choice_label(answer.same_person)),
        (_("Category"), choice_label(answer.category)),
        (
            _("Child victim"),
            "" if answer.child_victim is None else (_("Yes") if answer.child_victim else _("No")),
        ),
        (_("Finding date"), fmt_date(answer.finding_date)),
        (_("Sanction"), choice_label(answer.sanction)),
        (_("Note"), answer.text or ""),
        (_("Contact"), answer.contact or ""),
        (_("Reason for declining"), answer.decline_reason or ""),
    ]
    for name, value in rows:
        if not value:
            continue
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(50, 7, _t(name))
        pdf.set_font("Helvetica", size=10)
        pdf.multi_cell(0, 7, _t(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(
        0,
        5,
        _t(
            _(
                "The answer was sealed to your organisation and signed by the holder's key; the "
                "console opened it and verified the signature on this machine. Keep this "
                "document confidential in the applicant's HR file."
            )
        ),
    )
    return bytes(pdf.output())
