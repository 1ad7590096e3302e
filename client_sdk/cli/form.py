"""`refcheck form`: render the declaration and consent form; fingerprint a signed copy."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import typer

from client_sdk.cli._common import emit, handled, state
from client_sdk.cli.i18n import _
from client_sdk.errors import InvalidInput
from client_sdk.forms import FormOptions, render_form, sha256_file

app = typer.Typer(help="The applicant declaration and consent form.")


@app.command("render")
@handled
def render(
    ctx: typer.Context,
    lang: Annotated[str, typer.Option(help="id (Bahasa Indonesia) or en.")] = "id",
    fmt: Annotated[str, typer.Option("--format", help="html or pdf.")] = "html",
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout).")] = None,
    org_name: Annotated[str | None, typer.Option("--org", help="Organisation name.")] = None,
    position_ref: Annotated[str | None, typer.Option(help="Position reference.")] = None,
    applicant_ref: Annotated[str | None, typer.Option(help="Applicant reference.")] = None,
    purpose: Annotated[str, typer.Option(help="recruitment or rescreening.")] = "recruitment",
    expires_on: Annotated[str | None, typer.Option(help="Consent valid until, YYYY-MM-DD.")] = None,
    max_checks: Annotated[int | None, typer.Option(help="Checks the consent allows.")] = None,
) -> None:
    """Render the form (Bahasa Indonesia or English) as HTML or PDF."""
    if lang not in ("id", "en") or fmt not in ("html", "pdf"):
        raise InvalidInput(_("--lang is id or en, --format is html or pdf"))
    if purpose not in ("recruitment", "rescreening"):
        raise InvalidInput(_("--purpose is recruitment or rescreening"))
    try:
        expiry = None if expires_on is None else date.fromisoformat(expires_on)
    except ValueError:
        raise InvalidInput(_("dates are YYYY-MM-DD")) from None
    options = FormOptions(
        org_name=org_name,
        position_ref=position_ref,
        applicant_ref=applicant_ref,
        purpose="rescreening" if purpose == "rescreening" else "recruitment",
        expires_on=expiry,
        max_checks=max_checks,
    )
    fmt_lit: Literal["html", "pdf"] = "pdf" if fmt == "pdf" else "html"
    data = render_form(lang, fmt_lit, options)
    if out is None:
        if fmt == "pdf" and sys.stdout.isatty():
            raise InvalidInput(_("a PDF is not for the terminal: use --out FILE"))
        sys.stdout.buffer.write(data) if hasattr(sys.stdout, "buffer") else sys.stdout.write(
            data.decode("latin-1")
        )
        return
    out.write_bytes(data)
    st = state(ctx)
    emit(
        st,
        {"file": str(out), "sha256": sha256_file(out)},
        lambda: st.console.print(
            _("Wrote {path} (blank form SHA-256 {digest})").format(
                path=out, digest=sha256_file(out)
            )
        ),
    )


@app.command("hash")
@handled
def hash_(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="The signed form.")]
) -> None:
    """SHA-256 of a signed form: what `consent record --form-sha256` records."""
    st = state(ctx)
    try:
        digest = sha256_file(file)
    except OSError:
        raise InvalidInput(_("the file cannot be read")) from None
    emit(st, {"file": str(file), "sha256": digest}, lambda: print(digest))
