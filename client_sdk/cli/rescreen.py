"""`refcheck rescreen staff.csv`: check the whole current staff list under re-screening consents.

Input columns: staff_ref, full_name, date_of_birth, nationality, national_id, passport, email,
phone, consent_id (optional: with --record-consents a re-screening consent is recorded per row
that lacks one, which also needs form_sha256 (column or --form-sha256) and the row's
self_declared_finding answer). Optional columns: national_id_country, passport_country.

Every input row ends up as exactly one output row (line, staff_ref, status, holder_orgs,
entry_ids, consent_id, error, disclosure_requests: the ids of the requests `--request-disclosure`
opened for the row's matches): a malformed row is reported with its line number and skipped,
a refused row keeps the server's reason, and nothing else is lost. If the server is caught
misbehaving (bad proof, key change) the run stops, and the rows not yet checked are written as
`not_checked` so the file still accounts for every line.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from client_sdk._client import Client
from client_sdk.cli._common import ExitCode, State, emit, handled, state
from client_sdk.cli.check import request_disclosures
from client_sdk.errors import (
    ApiError,
    InvalidInput,
    ProtocolViolation,
    RefcheckError,
    TransportError,
)
from client_sdk.models import CheckResult
from protocol.identity import PERSON_FIELDS

REQUIRED_COLUMNS = ("staff_ref", "full_name", "date_of_birth")
KNOWN_COLUMNS = frozenset(
    ("staff_ref", *PERSON_FIELDS, "consent_id", "form_sha256", "self_declared_finding")
)
OUTPUT_COLUMNS = (
    "line",
    "staff_ref",
    "status",
    "holder_orgs",
    "entry_ids",
    "consent_id",
    "error",
    "disclosure_requests",
)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_YES = {"yes", "y", "true", "1", "ya"}
_NO = {"no", "n", "false", "0", "tidak"}


@dataclass
class Row:
    line: int
    staff_ref: str
    person: dict[str, str] = field(repr=False)
    consent_id: str | None
    form_sha256: str | None = None
    self_declared: bool | None = None


@dataclass
class Outcome:
    line: int
    staff_ref: str
    status: str
    consent_id: str = ""
    holder_orgs: str = ""
    entry_ids: str = ""
    error: str = ""
    disclosure_requests: str = ""

    def as_row(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "staff_ref": self.staff_ref,
            "status": self.status,
            "holder_orgs": self.holder_orgs,
            "entry_ids": self.entry_ids,
            "consent_id": self.consent_id,
            "error": self.error,
            "disclosure_requests": self.disclosure_requests,
        }


class Options:
    def __init__(
        self,
        *,
        record_consents: bool,
        form_sha256: str | None,
        position_ref: str,
        request_disclosure: bool = False,
        attach_details: bool = False,
    ) -> None:
        self.record_consents = record_consents
        self.form_sha256 = form_sha256
        self.position_ref = position_ref
        self.request_disclosure = request_disclosure
        self.attach_details = attach_details


def _parse_row(line: int, raw: dict[str | None, Any], opts: Options) -> Row:
    """Validate one CSV row; raises InvalidInput naming the problem (never a value)."""
    if None in raw:
        raise InvalidInput("more fields than the header has columns")
    if any(v is None for v in raw.values()):
        raise InvalidInput("fewer fields than the header has columns")
    values = {str(k): str(v).strip() for k, v in raw.items()}
    staff_ref = values.get("staff_ref", "")
    if not staff_ref:
        raise InvalidInput("staff_ref is empty")
    person = {k: values[k] for k in PERSON_FIELDS if values.get(k)}
    from protocol.identity import InvalidPersonError, Person

    try:
        Person.from_dict(person)
    except InvalidPersonError as exc:
        raise InvalidInput(str(exc)) from None
    consent_id = values.get("consent_id") or None
    if consent_id is not None and not _UUID.match(consent_id.lower()):
        raise InvalidInput("consent_id is not a consent id")
    row = Row(line=line, staff_ref=staff_ref, person=person, consent_id=consent_id)
    if consent_id is None:
        if not opts.record_consents:
            raise InvalidInput("no consent_id (use --record-consents to record them)")
        row.form_sha256 = (values.get("form_sha256") or opts.form_sha256 or "").lower() or None
        if row.form_sha256 is None or not _SHA256.match(row.form_sha256):
            raise InvalidInput("form_sha256 missing or not a SHA-256 (column or --form-sha256)")
        answer = values.get("self_declared_finding", "").lower()
        if answer in _YES:
            row.self_declared = True
        elif answer in _NO:
            row.self_declared = False
        else:
            # Recording a consent needs the person's own answer; we never assume "no" for them.
            raise InvalidInput("self_declared_finding must be yes or no to record a consent")
    return row


def read_rows(path: Path, opts: Options) -> tuple[list[Row], list[Outcome], int]:
    """Parse the file: (valid rows, outcomes for malformed rows, number of data rows)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError:
        raise InvalidInput("the staff file cannot be read") from None
    rows: list[Row] = []
    bad: list[Outcome] = []
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InvalidInput(f"the header lacks column(s): {', '.join(missing)}")
        unknown = sorted(set(header) - KNOWN_COLUMNS)
        if unknown:
            raise InvalidInput(f"unknown column(s): {', '.join(unknown)}")
        total = 0
        while True:
            start = reader.line_num + 1
            try:
                raw = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError):
                total += 1
                bad.append(Outcome(start, "", "invalid", error="unreadable CSV line"))
                continue
            total += 1
            try:
                rows.append(_parse_row(start, raw, opts))
            except InvalidInput as exc:
                ref = str(raw.get("staff_ref") or "").strip() if None not in raw else ""
                bad.append(Outcome(start, ref, "invalid", error=str(exc)))
    return rows, bad, total


def _batches(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _error_text(exc: RefcheckError) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.problem_slug}: {exc.detail}"
    return f"{type(exc).__name__}: {exc}"


def _result_outcome(row: Row, result: CheckResult) -> Outcome:
    return Outcome(
        row.line,
        row.staff_ref,
        result.status.value,
        consent_id=result.consent_id,
        holder_orgs=";".join(result.holder_orgs),
        entry_ids=";".join(m.entry_id for m in result.by_case()),
    )


def _ask_holders(
    client: Client, row: Row, result: CheckResult, outcome: Outcome, opts: Options
) -> RefcheckError | None:
    """Open a disclosure request per matched case of a row, from the check just made (no second
    check of its consent); their ids go to the row's `disclosure_requests`, a failure to its
    `error`. Returns the failure that should stop the run (unreachable server), raises a
    `ProtocolViolation`, and lets a refused request (say a record withdrawn since) pass."""
    asked = request_disclosures(
        client, result.by_case(), row.person if opts.attach_details else None
    )
    outcome.disclosure_requests = ";".join(d.id for d in asked.opened)
    if not asked.failed:
        return None
    exc = asked.failed[0][1]
    if isinstance(exc, ProtocolViolation):
        raise exc
    outcome.error = f"disclosure request not opened: {_error_text(exc)}"
    return exc


def run_batch(
    client: Client, batch: list[Row], opts: Options
) -> tuple[list[Outcome], TransportError | None]:
    """Record the missing consents of a batch, then check its rows in one `check_many`.

    Returns the batch's outcomes and, when the server became unreachable, that error: the run
    then stops instead of timing out row by row. A `ProtocolViolation` propagates.
    """
    done: list[Outcome] = []
    ready: list[Row] = []
    for row in batch:
        if row.consent_id is None:
            try:
                row.consent_id = client.record_consent(
                    applicant_ref=row.staff_ref,
                    purpose="rescreening",
                    position_ref=opts.position_ref,
                    form_sha256=row.form_sha256 or "",
                    self_declared_finding=bool(row.self_declared),
                    max_checks=1,
                )
            except ProtocolViolation:
                raise
            except TransportError as exc:
                return done, exc
            except RefcheckError as exc:
                done.append(Outcome(row.line, row.staff_ref, "error", error=_error_text(exc)))
                continue
        ready.append(row)
    results = client.check_many(
        [r.person for r in ready], [r.consent_id or "" for r in ready], return_exceptions=True
    )
    unreachable: TransportError | None = None
    for row, result in zip(ready, results, strict=True):
        if isinstance(result, CheckResult):
            outcome = _result_outcome(row, result)
            done.append(outcome)
            if opts.request_disclosure and result.matches:
                failure = _ask_holders(client, row, result, outcome, opts)
                if isinstance(failure, TransportError):
                    unreachable = failure
                    break
            continue
        if isinstance(result, TransportError):
            unreachable = result
        done.append(
            Outcome(
                row.line,
                row.staff_ref,
                "error",
                consent_id=row.consent_id or "",
                error=_error_text(result),
            )
        )
    return done, unreachable


def write_output(path: Path, outcomes: list[Outcome]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=OUTPUT_COLUMNS)
        writer.writeheader()
        for outcome in sorted(outcomes, key=lambda o: o.line):
            writer.writerow(outcome.as_row())


def exit_code(counts: Counter[str]) -> ExitCode:
    if counts["match"]:
        return ExitCode.MATCH
    if counts["possible_match"]:
        return ExitCode.POSSIBLE_MATCH
    if counts["invalid"] or counts["error"] or counts["not_checked"]:
        return ExitCode.PARTIAL
    return ExitCode.OK


def _summary(
    st: State, counts: Counter[str], total: int, out: Path, requested: int | None = None
) -> None:
    table = Table(title="Re-screening summary")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    for key, label in (
        ("no_match", "no match"),
        ("match", "match"),
        ("possible_match", "possible match (confirm)"),
        ("invalid", "skipped: malformed row"),
        ("error", "refused or failed"),
        ("not_checked", "not checked (run stopped)"),
    ):
        table.add_row(label, str(counts[key]))
    table.add_row("[bold]rows read[/]", f"[bold]{total}[/]")
    if requested is not None:
        table.add_row("disclosure requests opened", str(requested))
    st.console.print(table)
    st.console.print(f"Results written to {out}")


@handled
def rescreen(
    ctx: typer.Context,
    staff_csv: Annotated[Path, typer.Argument(help="CSV of current staff.")],
    out: Annotated[
        Path, typer.Option("--out", help="Results CSV (line, staff_ref, status, ...).")
    ] = Path("rescreen-results.csv"),
    record_consents: Annotated[
        bool,
        typer.Option(help="Record a re-screening consent for each row without consent_id."),
    ] = False,
    form_sha256: Annotated[
        str | None, typer.Option(help="SHA-256 of the signed form, for rows without the column.")
    ] = None,
    position_ref: Annotated[
        str, typer.Option(help="Position reference recorded on new consents.")
    ] = "staff-rescreening",
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Rows per batch.")] = 100,
    request_disclosure: Annotated[
        bool,
        typer.Option(
            "--request-disclosure",
            help="On a match, ask the holder of each matched case for its answer, from the same "
            "check (no second check of the consent). Request ids go to disclosure_requests.",
        ),
    ] = False,
    attach_details: Annotated[
        bool,
        typer.Option(
            "--attach-details",
            help="With --request-disclosure: seal the row's details to the holder, signed by "
            "your organisation, so it can tell whether it is the same person.",
        ),
    ] = False,
) -> None:
    """Re-screen current staff against the registry.

    Columns: staff_ref, full_name, date_of_birth, nationality, national_id, passport, email,
    phone, consent_id (optional with --record-consents, which also needs form_sha256 as a
    column or option and a self_declared_finding column: yes/no).

    Exit 0 all clear, 10 a match, 11 only possible matches, 12 some rows skipped or refused
    (and no match); the results file accounts for every input row. With --request-disclosure,
    a request that could not be opened is named in its row's error column.
    """
    st = state(ctx)
    if attach_details and not request_disclosure:
        raise InvalidInput("--attach-details only makes sense with --request-disclosure")
    opts = Options(
        record_consents=record_consents,
        form_sha256=form_sha256,
        position_ref=position_ref,
        request_disclosure=request_disclosure,
        attach_details=attach_details,
    )
    rows, outcomes, total = read_rows(staff_csv, opts)
    for bad in outcomes:
        st.errors.print(f"line {bad.line}: skipped - {bad.error}", highlight=False, markup=False)
    client = st.client()
    if attach_details:
        # Before any check is spent: an organisation key that changed since it was pinned
        # would stop the sealing after the checks, and their consents' checks would be lost.
        client.verify_directory()
    stopped: ProtocolViolation | TransportError | None = None
    with Progress(
        TextColumn("checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=st.errors,
        disable=st.json_output,
        transient=True,
    ) as progress:
        task = progress.add_task("rows", total=len(rows))
        for batch in _batches(rows, batch_size):
            try:
                done, stopped = run_batch(client, batch, opts)
            except ProtocolViolation as exc:
                stopped = exc
                break
            outcomes += done
            progress.advance(task, len(batch))
            if stopped is not None:
                break
    accounted = {o.line for o in outcomes}
    outcomes += [
        Outcome(r.line, r.staff_ref, "not_checked", consent_id=r.consent_id or "")
        for r in rows
        if r.line not in accounted
    ]
    write_output(out, outcomes)
    counts = Counter(o.status for o in outcomes)
    if stopped is not None:
        # Results so far are written first: stopping must not lose what was already checked.
        raise stopped
    summary: dict[str, Any] = {
        "rows": total,
        "results": str(out),
        **{k: counts[k] for k in sorted(counts)},
    }
    if request_disclosure:
        summary["disclosure_requests"] = sum(
            len(o.disclosure_requests.split(";")) for o in outcomes if o.disclosure_requests
        )
    emit(st, summary, lambda: _summary(st, counts, total, out, summary.get("disclosure_requests")))
    code = exit_code(counts)
    if code:
        raise typer.Exit(int(code))
