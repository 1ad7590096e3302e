"""`refcheck check`: one applicant, under one consent."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from client_sdk.cli._common import ExitCode, State, emit, handled, read_person, state
from client_sdk.models import CheckResult, CheckStatus

PersonFile = Annotated[
    str | None,
    typer.Option(
        "--person",
        help="JSON file with the person's fields, or - for stdin (preferred over flags: flags "
        "end up in shell history).",
    ),
]
FullName = Annotated[str | None, typer.Option(help="Full name as on the ID document.")]
Dob = Annotated[str | None, typer.Option("--dob", help="Date of birth, YYYY-MM-DD.")]
Nationality = Annotated[str | None, typer.Option(help="ISO 3166 alpha-2 country, e.g. ID.")]
NationalId = Annotated[str | None, typer.Option(help="National ID number (NIK for Indonesia).")]
Passport = Annotated[str | None, typer.Option(help="Passport number.")]
PassportCountry = Annotated[str | None, typer.Option(help="Passport's issuing country.")]
Email = Annotated[str | None, typer.Option(help="E-mail address.")]
Phone = Annotated[str | None, typer.Option(help="Phone number, international format.")]


def person_from(
    person: str | None,
    full_name: str | None,
    dob: str | None,
    nationality: str | None,
    national_id: str | None,
    passport: str | None,
    passport_country: str | None,
    email: str | None,
    phone: str | None,
) -> dict[str, object]:
    return read_person(
        person,
        {
            "full_name": full_name,
            "date_of_birth": dob,
            "nationality": nationality,
            "national_id": national_id,
            "passport": passport,
            "passport_country": passport_country,
            "email": email,
            "phone": phone,
        },
    )


EXIT_FOR_STATUS = {
    CheckStatus.NO_MATCH: ExitCode.OK,
    CheckStatus.MATCH: ExitCode.MATCH,
    CheckStatus.POSSIBLE_MATCH: ExitCode.POSSIBLE_MATCH,
}


def print_result(st: State, result: CheckResult) -> None:
    def human() -> None:
        colour = {"no_match": "green", "match": "bold red", "possible_match": "yellow"}
        st.console.print(
            f"Result: [{colour[result.status.value]}]{result.status.value}[/] "
            f"({result.keys_checked} keys checked, check {result.check_id})",
            highlight=False,
        )
        if result.status is CheckStatus.POSSIBLE_MATCH:
            st.console.print(
                "Only loose name forms matched: a person must confirm in the disclosure step "
                "before anyone acts on this."
            )
        if result.matches:
            table = Table(
                "holder organisation", "case", "strongest key", "strength", "record reference"
            )
            for m in result.by_case():
                table.add_row(m.holder_org, m.case_id, m.kind, m.strength, m.entry_id)
            st.console.print(table)
            st.console.print(
                f"{len(result.matches)} matching records in {len(result.by_case())} case(s); "
                "use the record reference to request disclosure from the holder."
            )

    emit(st, result.as_dict(), human)


@handled
def check(
    ctx: typer.Context,
    consent_id: Annotated[str, typer.Option("--consent", help="Consent id for this applicant.")],
    person: PersonFile = None,
    full_name: FullName = None,
    dob: Dob = None,
    nationality: Nationality = None,
    national_id: NationalId = None,
    passport: Passport = None,
    passport_country: PassportCountry = None,
    email: Email = None,
    phone: Phone = None,
) -> None:
    """Check one applicant against the registry. Exit 0 no match, 10 match, 11 possible match."""
    st = state(ctx)
    record = person_from(
        person, full_name, dob, nationality, national_id, passport, passport_country, email, phone
    )
    result = st.client().check_applicant(record, consent_id)
    print_result(st, result)
    code = EXIT_FOR_STATUS[result.status]
    if code:
        raise typer.Exit(int(code))
