"""`refcheck case`: a focal point registers, lists and withdraws concluded cases, and checks
that the server still publishes them (`verify-live`).

Registering a case returns its `keys_per_check` filter values (the pads among them proven by
the server). They are kept on this machine, beside the pin file (`<name>.cases.json`, 0600,
per server and organisation), and only there: `verify-live` compares them with the published
registry filter, so a server that dropped a case's entry, or displaced it to catch someone's
checks, is noticed by the one party that can notice it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from client_sdk._client import Client
from client_sdk.cli._common import ExitCode, State, beside, emit, handled, state
from client_sdk.cli._http import call_json
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
from client_sdk.cli.i18n import _
from client_sdk.errors import CredentialsError, InvalidInput, ProtocolViolation, RefcheckError
from client_sdk.models import Case, CaseRegistration, LiveCheck, Registration
from client_sdk.pinning import _locked
from client_sdk.secretfile import load_json_secret, write_json_secret
from protocol.identity import PERSON_FIELDS

app = typer.Typer(help="Concluded, substantiated cases of your organisation (focal points).")

FORMAT = 1


def _case_dict(case: Case) -> dict[str, object]:
    return case.model_dump(mode="json")


# -- the registrations kept on this machine --------------------------------------------------


def registrations_file(st: State) -> Path:
    path = beside(st.pins(), ".cases.json")
    if path is None:
        raise CredentialsError(
            _("no place to keep registrations: pass --pin-file or --credentials")
        )
    return path


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"refcheck_registrations": FORMAT, "servers": {}}
    document = load_json_secret(path)
    if document.get("refcheck_registrations") != FORMAT or not isinstance(
        document.get("servers"), dict
    ):
        raise CredentialsError(_("{path} is not a refcheck registrations file").format(path=path))
    return document


def _scope(client: Client) -> tuple[str, str]:
    org_id = client.credentials.org_id
    if not org_id:
        raise CredentialsError(_("the credentials do not name the organisation (org_id)"))
    return client.base_url, org_id


def keep_registration(path: Path, client: Client, registration: Registration) -> None:
    """Add one case's filter values to the file (a locked read-modify-write)."""
    server, org_id = _scope(client)
    with _locked(path):
        document = _read(path)
        cases = document["servers"].setdefault(server, {}).setdefault(org_id, {})
        cases[registration.case_id] = {
            "key_id": registration.key_id,
            "key_seq": registration.key_seq,
            "filter_values": list(registration.filter_values),
            "log_seq": registration.log_seq,
            "kept_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json_secret(path, document, overwrite=True)


def kept_registrations(path: Path, client: Client) -> dict[str, dict[str, Any]]:
    server, org_id = _scope(client)
    cases = _read(path)["servers"].get(server, {}).get(org_id, {})
    if not isinstance(cases, dict):
        raise CredentialsError(_("{path} is not a refcheck registrations file").format(path=path))
    return cases


def _registration(case: Case, kept: dict[str, Any], path: Path) -> Registration:
    try:
        values = tuple(int(v) for v in kept["filter_values"])
        log_seq = kept.get("log_seq")
        return Registration(
            case,
            str(kept["key_id"]),
            int(kept["key_seq"]),
            values,
            None if log_seq is None else int(log_seq),
        )
    except (KeyError, TypeError, ValueError):
        raise CredentialsError(_("{path} has a malformed registration").format(path=path)) from None


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
    """Register a substantiated finding. The person's keys are hashed and sealed to the network
    here; the server opens them in memory only and stores keys_per_check opaque entries. The
    case's filter values are kept beside the pin file for `case verify-live`."""
    st = state(ctx)
    record = person_from(
        person, full_name, dob, nationality, national_id, passport, passport_country, email, phone
    )
    client = st.client()
    path = registrations_file(st)
    registration = client.register_case(
        record,
        CaseRegistration(
            category=category,
            finding_date=finding_date,
            sanction=sanction,
            legal_basis=legal_basis,
            retention_until=retention_until,
            mou_reference=mou_reference,
            subject_notified_on=subject_notified_on,
            child_victim=child_victim,
        ),
    )
    keep_registration(path, client, registration)
    case_id = registration.case_id

    def human() -> None:
        st.console.print(
            _(
                "Registered case {case}; its filter values are kept in {path} for "
                "`refcheck case verify-live`"
            ).format(case=case_id, path=path)
        )
        if registration.log_seq is not None:
            st.console.print(
                _(
                    "Its registration is entry {seq} of the network's transparency log "
                    "(sealed into a signed tree head within seconds)"
                ).format(seq=registration.log_seq)
            )

    emit(
        st,
        {
            "case_id": case_id,
            "key_id": registration.key_id,
            "log_seq": registration.log_seq,
            "registrations_file": str(path),
        },
        human,
    )


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
        table = Table(
            _("id"), _("category"), _("finding date"), _("sanction"), _("retain until"), _("status")
        )
        for c in found:
            table.add_row(
                c.id,
                c.category + (_(" (child)") if c.child_victim else ""),
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
        lambda: st.console.print(
            _("Case {case} is now {status}").format(case=case.id, status=case.status)
        ),
    )


@app.command("retention")
@handled
def retention(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(help="The case's id.")],
    until: Annotated[str, typer.Option(help="New retention date, YYYY-MM-DD.")],
    allow_longer: Annotated[
        bool,
        typer.Option(
            "--allow-longer",
            help="Also allow a later date than today's (needs the MoU in force and the policy).",
        ),
    ] = False,
) -> None:
    """Shorten how long the network keeps a case: it is deleted after the new date."""
    st = state(ctx)
    try:
        new_date = date.fromisoformat(until)
    except ValueError:
        raise InvalidInput(_("until: not a real calendar date (YYYY-MM-DD)")) from None
    client = st.client()
    current = client.get_case(case_id)
    if new_date > current.retention_until and not allow_longer:
        raise InvalidInput(
            _(
                "until: later than the case's retention date ({date}); this command shortens "
                "retention (pass --allow-longer to keep it longer)"
            ).format(date=current.retention_until)
        )
    raw = call_json(
        client, "PATCH", f"/v1/cases/{quote(case_id, safe='')}",
        {"retention_until": new_date.isoformat()},
    )  # fmt: skip
    case = Case.model_validate(raw)
    emit(
        st,
        _case_dict(case),
        lambda: st.console.print(
            _("Case {case} is now kept until {date} (was {before})").format(
                case=case.id, date=case.retention_until, before=current.retention_until
            ),
            highlight=False,
        ),
    )


@app.command("verify-live")
@handled
def verify_live(
    ctx: typer.Context,
    case_id: Annotated[
        str | None, typer.Option("--case", help="Only this case (default: every kept one).")
    ] = None,
) -> None:
    """Check that the published registry filter still holds every filter value of your cases
    registered from this machine. Exit 6 when a live case misses one: the server dropped an
    entry, or displaced it with a value of its own; report it to the secretariat. After an OPRF
    key rotation the server re-issues a case's values for the new key: they are verified (the
    pads' proof), kept in place of the old ones and compared."""
    st = state(ctx)
    client = st.client()
    path = registrations_file(st)
    kept = kept_registrations(path, client)
    if case_id is not None:
        kept = {k: v for k, v in kept.items() if k == case_id}
    if not kept:
        raise InvalidInput(
            _(
                "no registration of this organisation is kept in {path}: only cases registered "
                "with `refcheck case register` from this machine can be verified"
            ).format(path=path)
        )
    cases = {c.id: c for c in client.list_cases()}
    registrations = [_registration(cases[k], v, path) for k, v in kept.items() if k in cases]
    checks = client.verify_live(registrations)
    # Values re-issued after an OPRF key rotation (verified by the SDK) replace the old ones.
    for check in checks:
        if check.reissued is not None:
            keep_registration(path, client, check.reissued)
    gone = sorted(k for k in kept if k not in cases)
    rows: list[dict[str, Any]] = [c.as_dict() for c in checks]
    rows += [{"case_id": k, "status": "purged", "missing": None, "values": None} for k in gone]
    missing = [c for c in checks if c.status == "missing"]

    def human() -> None:
        table = Table(_("case"), _("status"), _("values missing"))
        for c in checks:
            table.add_row(
                c.case_id,
                c.status,
                _("{missing} of {values}").format(missing=c.missing, values=c.values),
            )
        for k in gone:
            table.add_row(k, "purged", "")
        st.console.print(table)
        if missing:
            st.errors.print(
                _(
                    "[bold red]{count} live case(s) miss values in the published filter "
                    "(revision {revision})[/]: the server dropped or displaced their entries. "
                    "Report it to the network secretariat."
                ).format(count=len(missing), revision=missing[0].filter_revision),
                highlight=False,
            )
        else:
            st.console.print(_("Every live case is fully published."))

    emit(st, {"items": rows, "filter_revision": _revision(checks)}, human)
    if missing:
        raise typer.Exit(int(ExitCode.SECURITY))


def _revision(checks: list[LiveCheck]) -> int | None:
    return checks[0].filter_revision if checks else None


def _rekey_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """`[{"case_id": ..., <person fields>}, ...]`: each case with its person record again."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(_("{path} is not readable JSON").format(path=path)) from None
    if not isinstance(data, list) or not data:
        raise InvalidInput(_("{path} must hold a JSON list of case records").format(path=path))
    rows: list[tuple[str, dict[str, Any]]] = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("case_id"), str):
            raise InvalidInput(
                _("record {number}: needs a case_id and the person's fields").format(number=number)
            )
        person = {k: v for k, v in item.items() if k != "case_id" and v not in (None, "")}
        unknown = sorted(set(person) - set(PERSON_FIELDS))
        if unknown:
            raise InvalidInput(
                _("record {number}: unknown person fields: {fields}").format(
                    number=number, fields=", ".join(unknown)
                )
            )
        rows.append((item["case_id"], person))
    return rows


@app.command("rekey")
@handled
def rekey(
    ctx: typer.Context,
    from_file: Annotated[
        Path,
        typer.Option(
            "--from",
            help="JSON list of your cases' person records again, each with its case_id.",
        ),
    ],
) -> None:
    """Derive your cases' keys again from the records you hold (after the network's identity
    tables changed, a case gains the new key forms only this way) and have the server swap
    each case's entries in one transaction. Runs on your machine: the server never had the
    identifiers. The new filter values replace the kept ones for `case verify-live`."""
    st = state(ctx)
    rows = _rekey_rows(from_file)  # every record checked before anything is sent
    client = st.client()
    path = registrations_file(st)
    done: list[str] = []
    failed: list[dict[str, str]] = []
    for case_id, person in rows:
        try:
            registration = client.rekey_case(case_id, person)
        except RefcheckError as exc:
            if isinstance(exc, ProtocolViolation):
                raise
            failed.append({"case_id": case_id, "error": str(exc)})
            continue
        keep_registration(path, client, registration)
        done.append(case_id)

    def human() -> None:
        st.console.print(
            _("Re-keyed {done} of {total} case(s); values kept in {path}").format(
                done=len(done), total=len(rows), path=path
            )
        )
        for failure in failed:
            st.console.print(f"  {failure['case_id']}: {failure['error']}")

    emit(st, {"rekeyed": done, "failed": failed, "registrations_file": str(path)}, human)
    if failed:
        raise typer.Exit(ExitCode.REFUSED)
