"""`refcheck consent`: record, show and withdraw an applicant's consent receipt."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from client_sdk.cli._common import emit, handled, state
from client_sdk.cli.i18n import _
from client_sdk.errors import InvalidInput
from client_sdk.models import Consent

app = typer.Typer(help="Consent receipts: no check runs without one.")


def form_digest(form_sha256: str | None, form_file: Path | None) -> str:
    """The signed form's SHA-256, given directly or computed from the signed file."""
    from client_sdk.forms import sha256_file

    if (form_sha256 is None) == (form_file is None):
        raise InvalidInput(_("give exactly one of --form-sha256 and --form"))
    if form_file is not None:
        try:
            return sha256_file(form_file)
        except OSError:
            raise InvalidInput(_("the signed form file cannot be read")) from None
    assert form_sha256 is not None
    return form_sha256.lower()


def _details_note(details: str) -> str:
    if details == "unsigned":
        return _(
            " (sealed by the server's upgrade from an older version: not signed by your "
            "organisation)"
        )
    return ""


def show_consent(ctx: typer.Context, receipt: Consent) -> None:
    st = state(ctx)
    data = receipt.model_dump(mode="json")

    def human() -> None:
        st.console.print(
            _("Consent [bold]{id}[/] - {status}").format(id=receipt.id, status=receipt.status),
            highlight=False,
        )
        if receipt.details == "unreadable":
            st.console.print(
                _(
                    "  applicant, position and form: sealed to a key these credentials do not "
                    "hold (your organisation's X25519 key changed, or no org keys are loaded)"
                ),
                highlight=False,
            )
        else:
            declared = _("yes") if receipt.self_declared_finding else _("no")
            st.console.print(
                _(
                    "  applicant {applicant}, position {position}, self-declared finding "
                    "{declared}{note}"
                ).format(
                    applicant=receipt.applicant_ref,
                    position=receipt.position_ref,
                    declared=declared,
                    note=_details_note(receipt.details),
                ),
                highlight=False,
            )
            st.console.print(
                _("  signed form SHA-256 {digest}").format(digest=receipt.form_sha256),
                highlight=False,
            )
        st.console.print(
            _("  purpose {purpose}, checks used {used}/{max}, expires {expires}").format(
                purpose=receipt.purpose,
                used=receipt.checks_used,
                max=receipt.max_checks,
                expires=receipt.expires_on.isoformat(),
            ),
            highlight=False,
        )
        if receipt.lookup_code:
            st.console.print(
                _(
                    "  lookup code for the applicant: [bold]{code}[/] (shown only now: give it "
                    "to the applicant with their copy of the form)"
                ).format(code=receipt.lookup_code),
                highlight=False,
            )

    emit(st, data, human)


@app.command("record")
@handled
def record(
    ctx: typer.Context,
    applicant_ref: Annotated[
        str, typer.Option(help="Your own opaque reference for the applicant (never a name).")
    ],
    position_ref: Annotated[str, typer.Option(help="Your reference for the position.")],
    self_declared_finding: Annotated[
        bool,
        typer.Option(
            "--self-declared-finding/--no-self-declared-finding",
            help="Did the applicant answer 'yes' to any declaration question?",
        ),
    ],
    purpose: Annotated[str, typer.Option(help="recruitment or rescreening.")] = "recruitment",
    form_sha256: Annotated[
        str | None, typer.Option(help="SHA-256 of the signed form (see `refcheck form hash`).")
    ] = None,
    form_file: Annotated[
        Path | None, typer.Option("--form", help="The signed form file, hashed here.")
    ] = None,
    expires_on: Annotated[
        str | None, typer.Option(help="Last day of validity, YYYY-MM-DD (default: policy).")
    ] = None,
    max_checks: Annotated[int, typer.Option(help="How many checks this consent allows.")] = 1,
) -> None:
    """Record the receipt of an applicant's signed consent; prints its id and lookup code."""
    st = state(ctx)
    receipt = st.client().record_consent_receipt(
        applicant_ref=applicant_ref,
        purpose=purpose,
        position_ref=position_ref,
        form_sha256=form_digest(form_sha256, form_file),
        self_declared_finding=self_declared_finding,
        expires_on=None if expires_on is None else _date(expires_on),
        max_checks=max_checks,
    )
    show_consent(ctx, receipt)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(_("dates are YYYY-MM-DD")) from None


@app.command("show")
@handled
def show(ctx: typer.Context, consent_id: Annotated[str, typer.Argument()]) -> None:
    """Show a consent receipt of your organisation, its sealed details opened with your
    organisation's key."""
    show_consent(ctx, state(ctx).client().get_consent(consent_id))


@app.command("withdraw")
@handled
def withdraw(ctx: typer.Context, consent_id: Annotated[str, typer.Argument()]) -> None:
    """Withdraw a consent (the applicant asked): no further check can use it."""
    show_consent(ctx, state(ctx).client().withdraw_consent(consent_id))
