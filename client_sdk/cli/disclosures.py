"""`refcheck disclosures`, `refcheck lookup` and `refcheck stats`: the disclosure step, the
applicant's lookup code, and the yearly MDS figures.

Sealing, signing, opening and verifying happen here on your machine with your organisation's
keys (in the credentials file); the server only relays ciphertext. `show` opens what is addressed
to you and exits 6 (security) when an answer is not authentic.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from client_sdk.cli._common import State, emit, exit_code_for, handled, state
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
    request_disclosures,
    require_org_keys,
)
from client_sdk.cli.i18n import _
from client_sdk.disclosures import ApplicantDetails, ConsentLookup, Disclosure, VerifiedAnswer
from client_sdk.errors import InvalidInput
from client_sdk.models import DisclosureAnswer
from protocol.messages import OUTCOMES

app = typer.Typer(
    help="Disclosure requests: ask the holder of a matched record, answer as the holder.",
    no_args_is_help=True,
)

#: Columns of `refcheck stats` (the MDS yearly figures), in the order MDS members report them.
MDS_COLUMNS = (
    "recruitments",
    "requests_made",
    "responses_received",
    "responses_given",
    "applicants_rejected",
    "overdue_requests",
)


def _when(value: Any) -> str:
    return "" if value is None else value.isoformat(timespec="minutes")


def _row(d: Disclosure) -> dict[str, Any]:
    return d.model_dump(mode="json", exclude={"sealed_answer", "sealed_applicant_details"})


def _print_list(st: State, items: list[Disclosure]) -> None:
    def human() -> None:
        if not items:
            st.console.print(_("No disclosure requests."))
            return
        table = Table(_("id"), _("as"), _("from"), _("to"), _("state"), _("due"), _("overdue"))
        for d in items:
            table.add_row(
                d.id,
                d.role,
                d.requester_org,
                d.holder_org,
                d.state,
                _when(d.due_at),
                _("yes") if d.overdue else "",
            )
        st.console.print(table)

    emit(st, {"items": [_row(d) for d in items]}, human)


def _print_request(
    st: State,
    d: Disclosure,
    *,
    answer: VerifiedAnswer | None = None,
    details: ApplicantDetails | None = None,
) -> None:
    data = _row(d)
    if answer is not None:
        data["answer"] = answer.as_dict()
    if details is not None:
        data["applicant_details"] = {"signed": details.signed, **details.applicant}

    def human() -> None:
        st.console.print(
            _("Request [bold]{id}[/] - {state}").format(id=d.id, state=d.state)
            + (f" ({d.close_reason})" if d.close_reason else "")
            + (_(" [bold red]OVERDUE[/]") if d.overdue else ""),
            highlight=False,
        )
        st.console.print(
            _("  from {requester} to {holder}; requested {created}, due {due}").format(
                requester=d.requester_org,
                holder=d.holder_org,
                created=_when(d.created_at),
                due=_when(d.due_at),
            ),
            highlight=False,
        )
        if d.case_id:
            st.console.print(
                _("  record: case {case}, entry {entry}").format(case=d.case_id, entry=d.entry_id),
                highlight=False,
            )
        if d.outcome:
            st.console.print(
                _("  hiring outcome: {outcome}").format(outcome=d.outcome), highlight=False
            )
        if details is not None:
            signed = _("signed by the requester") if details.signed else _("NOT signed")
            st.console.print(
                _("  applicant details ({signed}):").format(signed=signed), highlight=False
            )
            for name, value in details.applicant.items():
                st.console.print(f"    {name}: {value}", highlight=False, markup=False)
        if answer is not None:
            st.console.print(
                _("  answer from {holder} (signature verified): [bold]{same_person}[/]").format(
                    holder=answer.holder_org, same_person=answer.same_person
                ),
                highlight=False,
            )
            for name in (
                "category",
                "child_victim",
                "finding_date",
                "sanction",
                "text",
                "contact",
                "decline_reason",
            ):
                value = getattr(answer, name)
                if value is not None:
                    st.console.print(f"    {name}: {value}", highlight=False, markup=False)

    emit(st, data, human)


@app.command("list")
@handled
def list_requests(
    ctx: typer.Context,
    role: Annotated[
        str | None, typer.Option(help="holder (requests to answer) or requester (your asks).")
    ] = None,
    state_: Annotated[
        str | None,
        typer.Option(
            "--state", help="requested, acknowledged, answered, closed, withdrawn, expired."
        ),
    ] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only requests past their response deadline.")
    ] = False,
) -> None:
    """List your organisation's disclosure requests (the secretariat: overdue ones)."""
    st = state(ctx)
    if role not in (None, "holder", "requester"):
        raise InvalidInput(_("--role must be holder or requester"))
    items = st.client().list_disclosures(
        role,  # type: ignore[arg-type]  # checked just above
        state_,
        True if overdue else None,
    )
    _print_list(st, items)


@app.command("show")
@handled
def show(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Disclosure request id.")],
    open_: Annotated[
        bool,
        typer.Option(
            "--open/--no-open",
            help="Open what is sealed to you: the answer (requester) or the applicant's "
            "details (holder), verifying the signature.",
        ),
    ] = True,
) -> None:
    """Show one request; with the answer (requester) or applicant details (holder) opened and
    verified. Exit 6 when they are not authentic."""
    st = state(ctx)
    client = st.client()
    request = client.get_disclosure(request_id)
    answer = details = None
    if open_ and request.role == "requester" and request.sealed_answer is not None:
        answer = client.read_disclosure_answer(request_id)
    if open_ and request.role == "holder" and request.sealed_applicant_details is not None:
        details = client.read_applicant_details(request_id)
    _print_request(st, request, answer=answer, details=details)


@app.command(
    "request",
    help="Check the applicant AGAIN (spends one more check of the consent) and ask the holder "
    "of each matched case. Prefer `refcheck check --request-disclosure`, which asks in the same "
    "run and spends no second check.",
)
@handled
def request(
    ctx: typer.Context,
    consent_id: Annotated[str, typer.Option("--consent", help="Consent id for this applicant.")],
    entry: Annotated[
        str | None,
        typer.Option(help="Record reference (entry id) to ask about; default: every match."),
    ] = None,
    send_details: Annotated[
        bool,
        typer.Option(
            "--send-details/--no-send-details",
            hidden=True,
            help="Accepted for older scripts: the applicant's details are always sealed to the "
            "holder (signed by your organisation) so it can confirm it is the same person.",
        ),
    ] = True,
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
    """Check the applicant again and ask the holder of each matched case for its answer.

    This spends one more check of the consent's budget: a request names an entry its check
    claimed, and the claims of a check exist only in the run that made it. It is for a check
    that was run without `--request-disclosure`, under a consent that allows another check;
    `refcheck check --request-disclosure` asks at no extra cost. The applicant's details are
    always sealed to the holder.
    """
    st = state(ctx)
    if not send_details:
        raise InvalidInput(
            _(
                "a disclosure request always carries the applicant's details sealed to the "
                "holder; --no-send-details is no longer possible"
            )
        )
    record = person_from(
        person, full_name, dob, nationality, national_id, passport, passport_country, email, phone
    )
    client = st.client()
    require_org_keys(client)  # before the check is spent
    client.verify_directory()  # a changed key stops us before the check is spent
    result = client.check_applicant(record, consent_id)
    matches = list(result.by_case())
    if entry is not None:
        matches = [m for m in result.matches if m.entry_id == entry]
        if not matches:
            raise InvalidInput(
                _(
                    "the applicant did not match that record reference (check {check} was run "
                    "and counts against the consent)"
                ).format(check=result.check_id)
            )
    asked = request_disclosures(client, matches, record)
    consent = client.get_consent(consent_id)
    data: dict[str, Any] = {
        "items": [_row(d) for d in asked.opened],
        "check_id": result.check_id,
        "checks_used": consent.checks_used,
        "max_checks": consent.max_checks,
    }
    if asked.failed:
        data["disclosure_errors"] = asked.as_dict()["disclosure_errors"]

    def human() -> None:
        if asked.opened:
            _print_list(st, asked.opened)
        elif not result.matches:
            st.console.print(_("No match: nothing to ask about."))
        asked.print(st)
        st.console.print(
            _("This ran check {check}: {used} of {max} check(s) of consent {consent} used.").format(
                check=result.check_id,
                used=consent.checks_used,
                max=consent.max_checks,
                consent=consent.id,
            ),
            highlight=False,
        )

    emit(st, data, human)
    if asked.failed:
        raise typer.Exit(int(exit_code_for(asked.failed[0][1])))


@app.command("acknowledge")
@handled
def acknowledge(
    ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="Request id.")]
) -> None:
    """Holder: say you have seen the request (the deadline keeps running)."""
    st = state(ctx)
    _print_request(st, st.client().acknowledge_disclosure(request_id))


@app.command("answer")
@handled
def answer(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    same_person: Annotated[
        str,
        typer.Option(help="confirmed, not_same_person or declined."),
    ],
    category: Annotated[
        str | None,
        typer.Option(help="sexual_exploitation, sexual_abuse or sexual_harassment."),
    ] = None,
    child_victim: Annotated[
        bool | None, typer.Option("--child-victim/--no-child-victim", help="Child victim flag.")
    ] = None,
    finding_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD.")] = None,
    sanction: Annotated[
        str | None,
        typer.Option(help="dismissal, contract_termination or other_disciplinary."),
    ] = None,
    text: Annotated[str | None, typer.Option(help="Short free text (no survivor data).")] = None,
    contact: Annotated[str | None, typer.Option(help="Contact for follow-up.")] = None,
    decline_reason: Annotated[str | None, typer.Option(help="Why you decline.")] = None,
) -> None:
    """Holder: answer, signed with your organisation's key and sealed to the requester."""
    st = state(ctx)
    sent = st.client().answer_disclosure(
        request_id,
        DisclosureAnswer(
            same_person=same_person,  # type: ignore[arg-type]  # validated by the SDK
            category=category,
            child_victim=child_victim,
            finding_date=finding_date,
            sanction=sanction,
            text=text,
            contact=contact,
            decline_reason=decline_reason,
        ),
    )
    _print_request(st, sent)


@app.command("withdraw")
@handled
def withdraw(
    ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="Request id.")]
) -> None:
    """Requester: you no longer need an answer."""
    st = state(ctx)
    _print_request(st, st.client().withdraw_disclosure(request_id))


@app.command("close")
@handled
def close(
    ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="Request id.")]
) -> None:
    """Requester: you have read the answer; the server deletes its ciphertext."""
    st = state(ctx)
    _print_request(st, st.client().close_disclosure(request_id))


@app.command("outcome")
@handled
def outcome(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    value: Annotated[str, typer.Argument(help="hired, not_hired_disclosure or not_hired_other.")],
) -> None:
    """Requester: report the applicant's hiring outcome (for the yearly figures)."""
    st = state(ctx)
    if value not in OUTCOMES:
        raise InvalidInput(_("the outcome must be hired, not_hired_disclosure or not_hired_other"))
    _print_request(st, st.client().report_outcome(request_id, value))


# -- the applicant's lookup code -------------------------------------------------------------


def _print_lookup(st: State, found: ConsentLookup) -> None:
    def human() -> None:
        st.console.print(
            _("Consent {consent} of {org} ({purpose}) - {status}").format(
                consent=found.consent_id, org=found.org, purpose=found.purpose, status=found.status
            ),
            highlight=False,
        )
        st.console.print(
            _("  given {given}, valid until {until}").format(
                given=_when(found.consented_at), until=found.expires_on.isoformat()
            ),
            highlight=False,
        )
        if not found.checks:
            st.console.print(_("  no check was run under it"))
        for c in found.checks:
            st.console.print(
                _("  checked by {org} at {at}").format(org=c.org, at=_when(c.at)), highlight=False
            )
        for r in found.disclosure_requests:
            st.console.print(
                _("  disclosure asked of {holder} at {at} ({state})").format(
                    holder=r.holder_org, at=_when(r.requested_at), state=r.state
                ),
                highlight=False,
            )

    emit(st, found.model_dump(mode="json"), human)


@handled
def lookup(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The applicant's lookup code (XXXX-XXXX-...).")],
    withdraw_: Annotated[
        bool, typer.Option("--withdraw", help="Withdraw the consent for the applicant.")
    ] = False,
) -> None:
    """For an applicant: who checked under their consent and when, and who was asked for a
    disclosure; `--withdraw` withdraws the consent (HR checker of the organisation, or the
    secretariat)."""
    st = state(ctx)
    client = st.client()
    found = client.consent_lookup_withdraw(code) if withdraw_ else client.consent_lookup(code)
    _print_lookup(st, found)


# -- yearly figures --------------------------------------------------------------------------


def mds_rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per organisation and one network (or own-organisation) total, MDS columns."""
    rows = []
    for org in figures.get("organisations") or []:
        mds = org.get("mds") or {}
        rows.append(
            {"scope": "organisation", "org": org.get("short_name", "")}
            | {c: mds.get(c, 0) for c in MDS_COLUMNS}
        )
    total = figures.get("mds") or {}
    label = "network" if figures.get("scope") == "network" else "total"
    rows.append({"scope": label, "org": ""} | {c: total.get(c, 0) for c in MDS_COLUMNS})
    return rows


def mds_csv(figures: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=["year", "scope", "org", *MDS_COLUMNS], lineterminator="\n"
    )
    writer.writeheader()
    for row in mds_rows(figures):
        writer.writerow({"year": figures.get("year", ""), **row})
    return out.getvalue()


@handled
def stats(
    ctx: typer.Context,
    year: Annotated[int | None, typer.Option(help="Calendar year (default: the current).")] = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print the MDS figures as CSV (one row per org).")
    ] = False,
) -> None:
    """The yearly figures MDS members publish (recruitments, requests made, responses
    received and given, applicants rejected, overdue requests): per organisation and
    network-wide for the secretariat and auditors, your own for members."""
    st = state(ctx)
    figures = st.client().stats(year)
    if as_csv:
        typer.echo(mds_csv(figures), nl=False)
        return

    def human() -> None:
        table = Table(
            title=_("MDS figures {year}").format(year=figures.get("year", year or "")).strip()
        )
        table.add_column(_("organisation"))
        for column in MDS_COLUMNS:
            table.add_column(column.replace("_", " "), justify="right")
        for row in mds_rows(figures):
            name = row["org"] or (_("network") if row["scope"] == "network" else _("total"))
            table.add_row(name, *(str(row[c]) for c in MDS_COLUMNS))
        st.console.print(table)

    emit(st, figures, human)


def answer_record(client: Any, request_id: str) -> dict[str, Any]:
    """What the HR file keeps of an answer: the request, the answer as opened and verified,
    how it was verified (the holder's pinned key fingerprint, when, by whom), and the sealed
    answer itself, which the organisation's keys open and verify again at any time."""
    import hashlib
    from datetime import UTC, datetime

    request = client.get_disclosure(request_id)
    if request.role != "requester":
        raise InvalidInput(_("only the requesting organisation can export the answer it received"))
    if request.sealed_answer is None:
        raise InvalidInput(
            _(
                "request {id} holds no answer (state {state}); a closed request's answer is "
                "deleted by the server, so export before closing"
            ).format(id=request_id, state=request.state)
        )
    answer = client.read_disclosure_answer(request_id)
    holder = client.org_keys(answer.holder_org_id)
    sealed = bytes.fromhex(request.sealed_answer)
    me = client.credentials
    return {
        "refcheck_disclosure_answer": 1,
        "request": _row(request),
        "answer": answer.as_dict(),
        "verification": {
            "signature": "verified",
            "holder_org_id": answer.holder_org_id,
            "holder_org": answer.holder_org,
            "holder_key_fingerprint": holder.fingerprint,
            "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "verified_by": me.principal_name or me.client_id,
            "verified_for_org": me.org_short_name,
        },
        "sealed_answer": {"hex": sealed.hex(), "sha256": hashlib.sha256(sealed).hexdigest()},
    }


def answer_pdf(record: dict[str, Any]) -> bytes:
    """The record as a one-page PDF with the shipped Unicode font (client_sdk.forms)."""
    from html import escape

    from client_sdk.forms import _pdf

    def rows(title: str, items: dict[str, Any]) -> str:
        cells = "".join(
            f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>"
            for k, v in items.items()
            if v is not None
        )
        return f"<h3>{escape(title)}</h3><table width='100%'>{cells}</table>"

    request = record["request"]
    body = (
        "<h1>Disclosure answer</h1>"
        f"<p>Request {escape(str(request.get('id')))} from "
        f"{escape(str(request.get('requester_org')))} to "
        f"{escape(str(request.get('holder_org')))}</p>"
        + rows("Answer (signature verified)", record["answer"])
        + rows("Verification", record["verification"])
        + rows("Request", {k: request.get(k) for k in ("state", "created_at", "due_at", "case_id")})
        + "<h3>Sealed answer (SHA-256)</h3>"
        f"<p>{escape(record['sealed_answer']['sha256'])}</p>"
        "<p>The sealed answer itself is kept in the JSON export; the organisation's keys open and "
        "verify it again.</p>"
    )
    return _pdf(body, "Disclosure answer", "en")


@app.command("export")
@handled
def export(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Disclosure request id.")],
    out: Annotated[Path, typer.Option("--out", help="FILE.json or FILE.pdf to write.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Keep the holder's signed answer, with how it was verified, for the HR file (before the
    request is closed: the server then deletes the answer)."""
    st = state(ctx)
    suffix = out.suffix.lower()
    if suffix not in (".json", ".pdf"):
        raise InvalidInput(_("out: the file must end in .json or .pdf"))
    if out.exists() and not overwrite:
        raise InvalidInput(
            _("out: {path} exists (pass --overwrite to replace it)").format(path=out)
        )
    record = answer_record(st.client(), request_id)
    if suffix == ".json":
        content = (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    else:
        content = answer_pdf(record)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    emit(
        st,
        {
            "request_id": request_id,
            "out": str(out),
            "sha256_sealed": record["sealed_answer"]["sha256"],
        },
        lambda: st.console.print(
            _("Answer to request {id} (signature verified) written to {path}").format(
                id=request_id, path=out
            ),
            highlight=False,
        ),
    )
