"""`refcheck check`: one applicant, under one consent; with `--request-disclosure`, also the
disclosure requests for what matched.

Why requests belong to the check: a disclosure request names the check and an entry that check
claimed, and it carries the applicant's details sealed to the holder; the details are the
person record given to this command, which is not stored anywhere. Asking later therefore
means giving the record again and checking again (`refcheck disclosures request`), which spends
a second check of the consent's budget; asking in the same run spends none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.table import Table

from client_sdk._client import Client
from client_sdk.cli._common import (
    ExitCode,
    State,
    describe,
    emit,
    exit_code_for,
    handled,
    read_person,
    state,
)
from client_sdk.cli.i18n import _
from client_sdk.disclosures import Disclosure
from client_sdk.errors import (
    ApiError,
    CredentialsError,
    InvalidInput,
    RefcheckError,
    ServerError,
)
from client_sdk.models import CheckResult, CheckStatus, Match

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
    emit(st, result.as_dict(), lambda: print_result_for_people(st, result))


def print_result_for_people(st: State, result: CheckResult, *, requesting: bool = False) -> None:
    colour = {"no_match": "green", "match": "bold red", "possible_match": "yellow"}
    st.console.print(
        _("Result: [{colour}]{status}[/] ({keys} keys checked, check {check})").format(
            colour=colour[result.status.value],
            status=result.status.value,
            keys=result.keys_checked,
            check=result.check_id,
        ),
        highlight=False,
    )
    if result.status is CheckStatus.POSSIBLE_MATCH:
        st.console.print(
            _(
                "Only loose name forms matched: a person must confirm in the disclosure step "
                "before anyone acts on this."
            )
        )
    if result.matches:
        table = Table(
            _("holder organisation"),
            _("case"),
            _("strongest key"),
            _("strength"),
            _("record reference"),
        )
        for m in result.by_case():
            table.add_row(m.holder_org, m.case_id, m.kind, m.strength, m.entry_id)
        st.console.print(table)
        found = _("{records} matching records in {cases} case(s)").format(
            records=len(result.matches), cases=len(result.by_case())
        )
        if requesting:
            st.console.print(_("{found}; asking each holder for its answer.").format(found=found))
        else:
            # The person record and the claims died with this process: asking now needs
            # another check.
            st.console.print(
                _(
                    "{found}. To ask the holder, `refcheck disclosures request` checks again "
                    "(one more check of the consent); next time use `check --request-disclosure`."
                ).format(found=found)
            )


@dataclass
class Requested:
    """What asking the holders of an applicant's matches came to: the requests opened, and the
    matches whose request failed with why."""

    #: Whether the applicant's details were sealed to the holders: always, in protocol v2
    #: (kept in the output for scripts that read it).
    details_attached: bool = True
    opened: list[Disclosure] = field(default_factory=list)
    failed: list[tuple[Match, RefcheckError]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "disclosure_requests": [
                {
                    "id": d.id,
                    "holder_org": d.holder_org,
                    "case_id": d.case_id,
                    "entry_id": d.entry_id,
                    "state": d.state,
                    "due_at": None if d.due_at is None else d.due_at.isoformat(),
                    "applicant_details_attached": self.details_attached,
                }
                for d in self.opened
            ]
        }
        if self.failed:
            out["disclosure_errors"] = [
                {"holder_org": m.holder_org, "case_id": m.case_id, "message": str(exc)}
                | describe(exc)
                for m, exc in self.failed
            ]
        return out

    def print(self, st: State) -> None:
        # One line per request, not a table: a narrow terminal would cut the ids short.
        for d in self.opened:
            due = (
                ""
                if d.due_at is None
                else _(", answer due {date}").format(date=d.due_at.date().isoformat())
            )
            st.console.print(
                _(
                    "Disclosure request [bold]{id}[/] sent to {holder} (case {case}, with the "
                    "applicant's details sealed to it{due})"
                ).format(id=d.id, holder=d.holder_org, case=d.case_id, due=due),
                highlight=False,
            )
        for m, exc in self.failed:
            st.errors.print(
                _(
                    "[bold red]error:[/] no disclosure request for {holder}'s case {case}: {error}"
                ).format(holder=m.holder_org, case=m.case_id, error=exc),
                highlight=False,
            )


def require_org_keys(client: Client) -> None:
    """Refuse, before any check is spent, a run that will ask holders for their answer with
    credentials that cannot seal the applicant's details nor read the answer: a person added
    with `keys init --auth-only` who has not imported the organisation's keys."""
    if client.credentials.org_keys is None:
        raise CredentialsError(
            _(
                "these credentials hold no organisation keys, which a disclosure request needs; "
                "nothing was checked. Ask a colleague for `refcheck keys export-org`, then run "
                "`refcheck keys import-org FILE --keys YOUR-KEYSTORE` and `refcheck login` again"
            )
        )


def request_disclosures(client: Client, matches: Iterable[Match], applicant: Any) -> Requested:
    """Open one disclosure request per matched case, from the matches in memory, each with the
    applicant's details (the person record that was checked) sealed to the holder.

    A refusal of one request (say a record withdrawn since the check) does not stop the
    others; a security failure, a credentials problem or an unreachable server does, since
    the next request would meet the same server.
    """
    done = Requested()
    for match in matches:
        try:
            request_id = client.request_disclosure(match, applicant=applicant)
            done.opened.append(client.get_disclosure(request_id))
        except RefcheckError as exc:
            done.failed.append((match, exc))
            if not isinstance(exc, ApiError) or isinstance(exc, ServerError):
                break
    return done


@handled
def check(
    ctx: typer.Context,
    consent_id: Annotated[str, typer.Option("--consent", help="Consent id for this applicant.")],
    request_disclosure: Annotated[
        bool,
        typer.Option(
            "--request-disclosure",
            help="On a match, ask the holder of each matched case for its answer, in the same "
            "run (no second check of the consent is spent). Prints the request ids.",
        ),
    ] = False,
    attach_details: Annotated[
        bool,
        typer.Option(
            "--attach-details",
            hidden=True,
            help="Accepted for older scripts: the applicant's details are always sealed to the "
            "holder now.",
        ),
    ] = False,
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
    """Check one applicant against the registry. Exit 0 no match, 10 match, 11 possible match.

    With --request-disclosure, each request carries the applicant's details, signed by your
    organisation and sealed to the holder, so it can confirm or deny the person. A request that
    could not be opened exits with its own code (3 refused, 4 unavailable, 5 credentials,
    6 security) even after a match; the output still shows the match and the requests that
    were opened.
    """
    st = state(ctx)
    if attach_details and not request_disclosure:
        raise InvalidInput(_("--attach-details only makes sense with --request-disclosure"))
    record = person_from(
        person, full_name, dob, nationality, national_id, passport, passport_country, email, phone
    )
    client = st.client()
    if request_disclosure:
        require_org_keys(client)
        # Before the check is spent: an organisation key that changed since it was pinned
        # would stop the sealing after the check, and the consent's check would be lost.
        client.verify_directory()
    result = client.check_applicant(record, consent_id)
    code = EXIT_FOR_STATUS[result.status]
    if not request_disclosure:
        print_result(st, result)
    else:
        asked = request_disclosures(client, result.by_case(), record)

        def human() -> None:
            print_result_for_people(st, result, requesting=True)
            asked.print(st)

        emit(st, result.as_dict() | asked.as_dict(), human)
        if asked.failed:
            code = exit_code_for(asked.failed[0][1])
    if code:
        raise typer.Exit(int(code))
