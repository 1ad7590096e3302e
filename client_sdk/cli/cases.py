"""`refcheck case`: a focal point registers, lists and withdraws concluded cases."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from client_sdk.cli._common import emit, handled, state
from client_sdk.cli.check import (
    Dob,
    Email,
    FullName,
    NationalId,
    Nationality,
    Passport,
    PassportCountry,
    PersonFile,
    Phone,
    person_from,
)
from client_sdk.models import Case

app = typer.Typer(help="Concluded, substantiated cases of your organisation (focal points).")


def _case_dict(case: Case) -> dict[str, object]:
    return case.model_dump(mode="json")


@app.command("register")
@handled
def register(
    ctx: typer.Context,
    category: Annotated[
        str, typer.Option(help="sexual_exploitation, sexual_abuse or sexual_harassment.")
    ],
    finding_date: Annotated[str, typer.Option(help="Date of the finding, YYYY-MM-DD.")],
    sanction: Annotated[
        str, typer.Option(help="dismissal, contract_termination or other_disciplinary.")
    ],
    legal_basis: Annotated[str, typer.Option(help="e.g. legitimate_interests.")],
    retention_until: Annotated[str, typer.Option(help="Delete after, YYYY-MM-DD (policy max).")],
    mou_reference: Annotated[str, typer.Option(help="The MoU the registration rests on.")],
    subject_notified_on: Annotated[
        str, typer.Option(help="When the person was told of the registration, YYYY-MM-DD.")
    ],
    child_victim: Annotated[bool, typer.Option(help="The victim was a child.")] = False,
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
    """Register a substantiated finding. Identifiers are blinded here; the server receives only
    pseudonyms and the case metadata."""
    st = state(ctx)
    record = person_from(
        person, full_name, dob, nationality, national_id, passport, passport_country, email, phone
    )
    case_id = st.client().register_case(
        record,
        category=category,
        finding_date=finding_date,
        sanction=sanction,
        legal_basis=legal_basis,
        retention_until=retention_until,
        mou_reference=mou_reference,
        subject_notified_on=subject_notified_on,
        child_victim=child_victim,
    )
    emit(st, {"case_id": case_id}, lambda: st.console.print(f"Registered case {case_id}"))


@app.command("list")
@handled
def list_cases(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="active or withdrawn.")] = None,
) -> None:
    """Your organisation's cases (metadata only: the registry holds no names)."""
    st = state(ctx)
    found = st.client().list_cases(status)  # type: ignore[arg-type]

    def human() -> None:
        table = Table("id", "category", "finding date", "sanction", "retain until", "status")
        for c in found:
            table.add_row(
                c.id,
                c.category + (" (child)" if c.child_victim else ""),
                c.finding_date.isoformat(),
                c.sanction,
                c.retention_until.isoformat(),
                c.status,
            )
        st.console.print(table)

    emit(st, {"items": [_case_dict(c) for c in found]}, human)


@app.command("withdraw")
@handled
def withdraw(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument()],
    reason: Annotated[
        str,
        typer.Option(help="appeal_upheld, rectification, registered_in_error or other."),
    ],
    note: Annotated[str | None, typer.Option(help="For your records; no names.")] = None,
) -> None:
    """Withdraw a case: it stops matching at once."""
    st = state(ctx)
    case = st.client().withdraw_case(case_id, reason, note=note)
    emit(
        st,
        _case_dict(case),
        lambda: st.console.print(f"Case {case.id} is now {case.status}"),
    )
