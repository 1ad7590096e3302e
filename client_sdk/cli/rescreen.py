"""`refcheck rescreen STAFF`: check the whole current staff list under re-screening consents.

STAFF is a CSV file (UTF-8 or Windows-1252, `,` `;` or tab) or an `.xlsx` workbook, read by
`client_sdk.tabular`. Columns: staff_ref, full_name, date_of_birth, nationality, national_id,
passport, email, phone, consent_id; optional: national_id_country, passport_country, and, for
`--record-consents`, form_sha256 (the SHA-256 of *that person's* signed form) and
self_declared_finding (their own yes/no answer).

Nothing is lost:

- **Every line** after the header ends up as one row of the results file (line, staff_ref,
  status, holder_orgs, entry_ids, consent_id, error, disclosure_requests), with a status of
  `match`, `possible_match`, `no_match`, `invalid` (the error column says what and where) or
  `not_checked` (refused by the server, or the run stopped first; the error column says which).
  The results file is rewritten after every batch, so even a killed run leaves it complete.
- **Every consent** recorded gets the policy's re-screening allowance of checks (so the
  disclosure request that follows a match has a check left), and its lookup code goes at once to
  a separate owner-only file (staff_ref, lookup_code, consent_id) for HR to hand to each person:
  the server cannot show it again.
- **A stopped run** (server down, Ctrl-C, a security failure) still writes its results and
  prints its summary. `--resume RESULTS` continues it: rows already checked are kept, consents
  already recorded are reused (from the results or the lookup-code file), and no second consent
  is recorded for a staff_ref.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import signal
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from client_sdk._client import Client
from client_sdk.cli._common import ExitCode, State, emit, exit_code_for, handled, state
from client_sdk.cli.check import request_disclosures
from client_sdk.cli.i18n import _
from client_sdk.errors import (
    ApiError,
    InvalidInput,
    ProtocolViolation,
    RefcheckError,
    TransportError,
)
from client_sdk.models import CheckResult
from client_sdk.tabular import Problem, Record, Table, TableError, read_table
from protocol.identity import PERSON_FIELDS, InvalidPersonError, Person

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
CODES_COLUMNS = ("staff_ref", "lookup_code", "consent_id")
CHECKED = frozenset({"match", "possible_match", "no_match"})
STATUSES = (*sorted(CHECKED), "invalid", "not_checked")
#: The shell's code for a run ended by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130
#: Marks a row whose consent request reached the server but whose answer was lost: the server
#: may hold a consent for it that we do not know, so no run records another one by itself.
CONSENT_UNKNOWN = "consent-unknown"
_NOT_REACHED = "the run stopped before this row"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# What Excel writes for a long number typed into a number cell: "3.20123E+15", "3,2E+15".
_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
_YES = {"yes", "y", "true", "1", "ya"}
_NO = {"no", "n", "false", "0", "tidak"}
# Failures where the request never left this machine: recording the consent again is safe.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass
class Row:
    line: int
    staff_ref: str
    person: dict[str, str] = field(repr=False)
    consent_id: str | None
    form_sha256: str = ""
    self_declared: str = ""
    #: The consent was recorded by an earlier, stopped run (found in its results or codes file).
    reused: bool = False


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
        return {name: getattr(self, name) for name in OUTPUT_COLUMNS}


@dataclass
class Options:
    record_consents: bool = False
    form_sha256: str | None = None
    same_form_for_all: bool = False
    position_ref: str = "staff-rescreening"
    request_disclosure: bool = False
    #: Checks each new consent allows: the policy's re-screening allowance unless lowered.
    max_checks: int | None = None


# -- reading the staff file ----------------------------------------------------------------


def _invalid(table: Table, line: int, ref: str, column: str | None, message: str) -> Outcome:
    known = column if column in table.header else None
    return Outcome(line, ref, "invalid", error=table.problem(line, known, message).reason)


def _person_problem(table: Table, line: int, ref: str, message: str) -> Outcome:
    """The identity module's messages start with the field they are about ("date_of_birth is
    not a real calendar date"): add where that column is."""
    name = message.partition(" ")[0]
    column = table.position(name) if name in table.header else None
    return Outcome(line, ref, "invalid", error=Problem(line, column, message).reason)


def parse_record(table: Table, record: Record) -> Row | Outcome:
    """One line of the staff file as a row to check, or its `invalid` outcome (never a
    value in the message, only the column and the rule)."""
    ref = record.values.get("staff_ref", "")
    if record.problem is not None:
        return Outcome(record.line, ref, "invalid", error=record.problem.reason)
    values = record.values
    if not ref:
        return _invalid(table, record.line, ref, "staff_ref", "staff_ref is empty")
    for name in ("national_id", "passport", "phone"):
        if _SCIENTIFIC.match(values.get(name, "")):
            return _invalid(
                table,
                record.line,
                ref,
                name,
                "Excel wrote this number in scientific notation and its last digits are lost: "
                "format the column as Text in Excel and type the numbers again",
            )
    person = {k: values[k] for k in PERSON_FIELDS if values.get(k)}
    try:
        Person.from_dict(person)
    except InvalidPersonError as exc:
        return _person_problem(table, record.line, ref, str(exc))
    consent_id = values.get("consent_id") or None
    if consent_id is not None and not _UUID.match(consent_id.lower()):
        return _invalid(table, record.line, ref, "consent_id", "not a consent id")
    return Row(
        line=record.line,
        staff_ref=ref,
        person=person,
        consent_id=consent_id,
        form_sha256=values.get("form_sha256", "").lower(),
        self_declared=values.get("self_declared_finding", "").lower(),
    )


def consent_problem(table: Table, row: Row, opts: Options) -> Outcome | None:
    """For a row that needs a consent recorded: what is missing for it, if anything. Sets the
    row's form hash (column, or `--form-sha256` with `--same-form-for-all`)."""

    def bad(column: str | None, message: str) -> Outcome:
        return _invalid(table, row.line, row.staff_ref, column, message)

    if not opts.record_consents:
        return bad("consent_id", "no consent_id (use --record-consents to record them)")
    if not row.form_sha256 and opts.same_form_for_all and opts.form_sha256:
        row.form_sha256 = opts.form_sha256.lower()
    if not row.form_sha256:
        return bad(
            "form_sha256",
            "no form_sha256: the SHA-256 of this person's signed form (refcheck form hash FILE)",
        )
    if not _SHA256.match(row.form_sha256):
        return bad("form_sha256", "form_sha256 is not a SHA-256 (64 hexadecimal digits)")
    if row.self_declared not in _YES | _NO:
        # Recording a consent needs the person's own answer; we never assume "no" for them.
        return bad(
            "self_declared_finding", "self_declared_finding must be yes or no to record a consent"
        )
    return None


def _lines(numbers: Iterable[int], limit: int = 6) -> str:
    shown = sorted(numbers)
    text = ", ".join(str(n) for n in shown[:limit])
    return text + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def refuse_shared_forms(rows: list[Row], opts: Options) -> None:
    """Each person signs their own form, so two rows with one form hash are a copy-paste slip
    (or a column filled down), unless the organisation says otherwise."""
    if opts.same_form_for_all:
        return
    by_hash: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_hash[row.form_sha256].append(row.line)
    shared = [lines for lines in by_hash.values() if len(lines) > 1]
    if shared:
        raise InvalidInput(
            _(
                "lines {lines} have the same form_sha256 ({count} rows share a hash): each "
                "person's signed form has its own. Put the SHA-256 of each signed copy in its "
                "row, or, if one signed document really covers every row, say so with "
                "--same-form-for-all"
            ).format(lines=_lines(shared[0]), count=sum(len(s) for s in shared))
        )


def mark_repeated_refs(table: Table, parsed: dict[int, Row | Outcome]) -> None:
    """A staff_ref on two lines would get two consents and two results: both lines are
    invalid until the file says which one is meant."""
    where: dict[str, list[int]] = defaultdict(list)
    for line, item in parsed.items():
        if item.staff_ref:
            where[item.staff_ref].append(line)
    for ref, lines in where.items():
        if len(lines) < 2:
            continue
        for line in lines:
            item = parsed[line]
            if isinstance(item, Row):
                others = [n for n in lines if n != line]
                parsed[line] = _invalid(
                    table,
                    line,
                    ref,
                    "staff_ref",
                    f"the same staff_ref is on line(s) {_lines(others)}: one row per person",
                )


# -- earlier runs (--resume) ---------------------------------------------------------------


def load_results(path: Path, table: Table) -> dict[int, Outcome]:
    """A results file of an earlier run on this staff file, by line."""
    try:
        results = read_table(
            path,
            required=("line", "staff_ref", "status"),
            known=set(OUTPUT_COLUMNS),
            what="results file",
        )
    except TableError as exc:
        raise InvalidInput(_("--resume: {problem}").format(problem=exc)) from None
    outcomes: dict[int, Outcome] = {}
    for record in results.records:
        if record.problem is not None:
            raise InvalidInput(
                _("--resume: the results file is damaged: {problem}").format(problem=record.problem)
            )
        values = {k: record.values.get(k, "") for k in OUTPUT_COLUMNS}
        try:
            line = int(values.pop("line"))
        except ValueError:
            raise InvalidInput(
                _("--resume: results file line {line}: the line column is not a number").format(
                    line=record.line
                )
            ) from None
        if values["status"] == "error":  # written by versions before the five statuses
            values["status"] = "not_checked"
        if values["status"] not in STATUSES:
            raise InvalidInput(
                _("--resume: results file line {line}: unknown status {status!r}").format(
                    line=record.line, status=values["status"]
                )
            )
        outcomes[line] = Outcome(line=line, **values)
    staff_lines = {r.line for r in table.records}
    if set(outcomes) != staff_lines:
        raise InvalidInput(
            _(
                "--resume: the results file does not account for the lines of this staff file "
                "({results} results, {lines} lines): is it this file's?"
            ).format(results=len(outcomes), lines=len(staff_lines))
        )
    for record in table.records:
        now, before = record.values.get("staff_ref", ""), outcomes[record.line].staff_ref
        if now and before and now != before:
            raise InvalidInput(
                _(
                    "--resume: line {line} has another staff_ref than in the results file: "
                    "rows were added, removed or reordered since that run"
                ).format(line=record.line)
            )
    return outcomes


def load_codes(path: Path) -> dict[str, str]:
    """staff_ref -> consent id of the consents an earlier run recorded (its lookup-code file,
    written as each consent was recorded: it knows them even when the run was killed)."""
    if not path.exists():
        return {}
    try:
        codes = read_table(path, required=CODES_COLUMNS, what="lookup-code file")
    except TableError as exc:
        raise InvalidInput(_("--resume: {problem}").format(problem=exc)) from None
    return {
        r.values["staff_ref"]: r.values["consent_id"]
        for r in codes.records
        if r.problem is None and r.values["consent_id"]
    }


# -- writing -------------------------------------------------------------------------------


class CodesFile:
    """The lookup codes of the consents recorded, for HR to hand out: readable by the owner
    only, appended to (never rewritten) and flushed as each consent is recorded."""

    def __init__(self, path: Path, delimiter: str) -> None:
        self.path = path
        self.delimiter = delimiter
        self.written = 0
        self._fh: IO[str] | None = None
        self._writer: Any = None

    def add(self, staff_ref: str, lookup_code: str | None, consent_id: str) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # a file left from before may have had other bits
            # With a BOM (written only into an empty file), so that Excel on Windows reads
            # names in any script as UTF-8 rather than as the machine's code page.
            self._fh = os.fdopen(fd, "a", newline="", encoding="utf-8-sig")
            self._writer = csv.writer(self._fh, delimiter=self.delimiter)
            if self._fh.tell() == 0:
                self._writer.writerow(CODES_COLUMNS)
        self._writer.writerow((staff_ref, lookup_code or "", consent_id))
        self._fh.flush()
        self.written += 1

    def sync(self) -> None:
        if self._fh is not None:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None


def write_results(path: Path, outcomes: list[Outcome], delimiter: str) -> None:
    """Replace the results file in one step: a run killed while writing leaves the previous
    complete file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # With a BOM, as the lookup codes: Excel on Windows then reads it as UTF-8.
        with tmp.open("w", newline="", encoding="utf-8-sig") as fh:
            writer = csv.DictWriter(fh, fieldnames=OUTPUT_COLUMNS, delimiter=delimiter)
            writer.writeheader()
            for outcome in sorted(outcomes, key=lambda o: o.line):
                writer.writerow(outcome.as_row())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(
            _("the results file {path} cannot be written ({error})").format(
                path=path, error=exc.strerror
            )
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- checking --------------------------------------------------------------------------------


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
    check of its consent), with the row's details sealed to the holder; their ids go to the
    row's `disclosure_requests`, a failure to its `error`. Returns the failure that should stop
    the run (unreachable server), raises a `ProtocolViolation`, and lets a refused request (say
    a record withdrawn since) pass."""
    asked = request_disclosures(client, result.by_case(), row.person)
    outcome.disclosure_requests = ";".join(d.id for d in asked.opened)
    if not asked.failed:
        return None
    exc = asked.failed[0][1]
    if isinstance(exc, ProtocolViolation):
        raise exc
    outcome.error = f"disclosure request not opened: {_error_text(exc)}"
    return exc


@dataclass
class Run:
    """One run's state: what is decided so far, and why it stopped (if it did)."""

    table: Table
    rows: list[Row]
    outcomes: dict[int, Outcome]
    codes: CodesFile
    stop_requested: Callable[[], bool] = lambda: False
    stopped: RefcheckError | None = None
    interrupted: bool = False
    recorded: int = 0

    def all_outcomes(self) -> list[Outcome]:
        """One outcome per line: the rows not reached are `not_checked`, with their consent."""
        rows = {r.line: r for r in self.rows}
        out = []
        for record in self.table.records:
            decided = self.outcomes.get(record.line)
            if decided is None:
                row = rows[record.line]
                decided = Outcome(
                    row.line, row.staff_ref, "not_checked", row.consent_id or "", error=_NOT_REACHED
                )
            out.append(decided)
        return out


def record_missing_consents(client: Client, batch: list[Row], opts: Options, run: Run) -> list[Row]:
    """Record the consents a batch lacks; returns the rows ready to check. Each lookup code is
    in the codes file before the next request is sent."""
    ready: list[Row] = []
    for row in batch:
        if run.stop_requested():
            break
        if row.consent_id is None:
            try:
                recorded = client.record_consent(
                    applicant_ref=row.staff_ref,
                    purpose="rescreening",
                    position_ref=opts.position_ref,
                    form_sha256=row.form_sha256,
                    self_declared_finding=row.self_declared in _YES,
                    max_checks=opts.max_checks or 1,
                )
            except TransportError as exc:
                run.stopped = exc
                if not isinstance(exc.__cause__, _NEVER_SENT):
                    run.outcomes[row.line] = Outcome(
                        row.line,
                        row.staff_ref,
                        "not_checked",
                        error=f"{CONSENT_UNKNOWN}: the consent request reached the server but "
                        f"its answer was lost ({_error_text(exc)}), so the server may hold a "
                        "consent for this row whose id and lookup code we do not know. No "
                        "run records another one by itself: record it by hand (refcheck "
                        "consent record) and put its id in this row's consent_id column",
                    )
                break
            except RefcheckError as exc:
                if isinstance(exc, ProtocolViolation):
                    raise
                run.outcomes[row.line] = Outcome(
                    row.line, row.staff_ref, "not_checked", error=f"refused: {_error_text(exc)}"
                )
                continue
            run.codes.add(row.staff_ref, recorded.lookup_code, recorded.id)
            run.recorded += 1
            row.consent_id = recorded.id
        ready.append(row)
    return ready


def check_rows(client: Client, ready: list[Row], opts: Options, run: Run) -> None:
    """Check the ready rows in one `check_many`; a `ProtocolViolation` propagates."""
    if not ready:
        return
    results = client.check_many(
        [r.person for r in ready], [r.consent_id or "" for r in ready], return_exceptions=True
    )
    for row, result in zip(ready, results, strict=True):
        if isinstance(result, CheckResult):
            outcome = _result_outcome(row, result)
            run.outcomes[row.line] = outcome
            if opts.request_disclosure and result.matches:
                if run.stopped is not None:
                    outcome.error = "disclosure request not opened: the server became unreachable"
                    continue
                failure = _ask_holders(client, row, result, outcome, opts)
                if isinstance(failure, TransportError):
                    run.stopped = failure
            continue
        if isinstance(result, TransportError):
            run.stopped = run.stopped or result
            reason = f"server unreachable: {_error_text(result)}"
        else:
            reason = f"refused: {_error_text(result)}"
        run.outcomes[row.line] = Outcome(
            row.line, row.staff_ref, "not_checked", consent_id=row.consent_id or "", error=reason
        )


@contextlib.contextmanager
def interrupt_after_batch() -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C asks the run to stop after the request in flight (so no lookup code is
    lost between the server's answer and the codes file); a second one stops at once."""
    asked = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        asked.set()
        signal.signal(signal.SIGINT, previous or signal.default_int_handler)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (an embedding program): nothing to defer
        yield asked.is_set
        return
    try:
        yield asked.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _batches(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def exit_code(counts: Counter[str]) -> ExitCode:
    if counts["match"]:
        return ExitCode.MATCH
    if counts["possible_match"]:
        return ExitCode.POSSIBLE_MATCH
    if counts["invalid"] or counts["not_checked"]:
        return ExitCode.PARTIAL
    return ExitCode.OK


def _summary(st: State, data: dict[str, Any]) -> None:
    table = RichTable(title=_("Re-screening summary"))
    table.add_column(_("outcome"))
    table.add_column(_("rows"), justify="right")
    for key, label in (
        ("no_match", _("no match")),
        ("match", _("match")),
        ("possible_match", _("possible match (confirm)")),
        ("invalid", _("invalid (see the error column)")),
        ("not_checked", _("not checked (refused, or the run stopped)")),
    ):
        table.add_row(label, str(data[key]))
    table.add_row(_("[bold]lines read[/]"), f"[bold]{data['rows']}[/]")
    table.add_row(_("consents recorded"), str(data["consents_recorded"]))
    if data["consents_reused"]:
        table.add_row(_("consents reused from the earlier run"), str(data["consents_reused"]))
    if "disclosure_requests" in data:
        table.add_row(_("disclosure requests opened"), str(data["disclosure_requests"]))
    st.console.print(table)
    st.console.print(_("Results written to {path}").format(path=data["results"]), highlight=False)
    if data["consents_recorded"]:
        st.console.print(
            _(
                "Lookup codes of the new consents: {path} (owner-only; hand each person their "
                "code, the server cannot show it again)"
            ).format(path=data["lookup_codes"]),
            highlight=False,
        )
    if "stopped" in data:
        st.console.print(
            _("[bold]Stopped:[/] {reason}. Continue with --resume {path}").format(
                reason=data["stopped"]["message"], path=data["results"]
            ),
            highlight=False,
        )


def _policy_allowance(client: Client, asked: int | None) -> int:
    """Checks a new re-screening consent allows: the network policy's allowance, or fewer if
    asked. More than the policy allows is refused before anything is recorded."""
    policy = client.policy()
    rule = (policy.get("consent_purposes") or {}).get("rescreening")
    if not isinstance(rule, dict) or not isinstance(rule.get("max_checks"), int):
        raise InvalidInput(_("the network policy allows no re-screening consents"))
    limit: int = rule["max_checks"]
    if asked is not None and asked > limit:
        raise InvalidInput(
            _(
                "--max-checks {asked} is above the network policy's re-screening allowance "
                "({limit} checks per consent)"
            ).format(asked=asked, limit=limit)
        )
    return asked if asked is not None else limit


@handled
def rescreen(
    ctx: typer.Context,
    staff_file: Annotated[
        Path, typer.Argument(help="Staff list: CSV (, ; or tab; UTF-8 or Windows-1252) or .xlsx.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Results CSV, one row per input line (default: rescreen-results.csv, or the "
            "--resume file).",
        ),
    ] = None,
    record_consents: Annotated[
        bool,
        typer.Option(help="Record a re-screening consent for each row without consent_id."),
    ] = False,
    form_sha256: Annotated[
        str | None,
        typer.Option(
            help="With --same-form-for-all: the SHA-256 of the one signed form, for rows "
            "without a form_sha256 column value."
        ),
    ] = None,
    same_form_for_all: Annotated[
        bool,
        typer.Option(
            "--same-form-for-all",
            help="One signed document covers every row: allow one form hash for all rows.",
        ),
    ] = False,
    max_checks: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Checks each new consent allows (default: the network policy's re-screening "
            "allowance; more is refused).",
        ),
    ] = None,
    codes: Annotated[
        Path | None,
        typer.Option(
            "--codes",
            help="Owner-only file for the new consents' lookup codes (default: beside the "
            "results, NAME.lookup-codes.csv).",
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Results file of a stopped run on the same staff file: keep its checked rows, "
            "reuse its consents, check the rest.",
        ),
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
            "check (no second check of the consent), with the row's details signed by your "
            "organisation and sealed to the holder. Request ids go to disclosure_requests.",
        ),
    ] = False,
    attach_details: Annotated[
        bool,
        typer.Option(
            "--attach-details",
            hidden=True,
            help="Accepted for older scripts: the row's details are always sealed to the holder "
            "now.",
        ),
    ] = False,
) -> None:
    """Re-screen current staff against the registry.

    Columns: staff_ref, full_name, date_of_birth, nationality, national_id, passport, email,
    phone, consent_id. With --record-consents, rows without consent_id get a re-screening
    consent, which needs form_sha256 (the SHA-256 of that person's signed form) and
    self_declared_finding (yes/no) columns.

    Exit 0 all clear, 10 a match, 11 only possible matches, 12 some lines invalid or not checked
    (and no match), 4 server unreachable, 6 security failure, 130 Ctrl-C; the results file
    accounts for every input line in every case.
    """
    st = state(ctx)
    if attach_details and not request_disclosure:
        raise InvalidInput(_("--attach-details only makes sense with --request-disclosure"))
    if form_sha256 is not None and not same_form_for_all:
        raise InvalidInput(
            _(
                "--form-sha256 gives every row the same signed form: each person signs their "
                "own, so put each one's hash in a form_sha256 column (or add "
                "--same-form-for-all if one signed document really covers everyone)"
            )
        )
    if form_sha256 is not None and not _SHA256.match(form_sha256.lower()):
        raise InvalidInput(_("--form-sha256 is not a SHA-256 (64 hexadecimal digits)"))
    opts = Options(
        record_consents=record_consents,
        form_sha256=form_sha256,
        same_form_for_all=same_form_for_all,
        position_ref=position_ref,
        request_disclosure=request_disclosure,
    )
    results_path = out or resume or Path("rescreen-results.csv")
    codes_path = codes or (resume or results_path).with_name(
        (resume or results_path).stem + ".lookup-codes.csv"
    )
    if resume is None and record_consents:
        for existing in (results_path, codes_path):
            if existing.exists():
                raise InvalidInput(
                    _(
                        "{path} exists and may hold consents of an earlier run: continue that "
                        "run with --resume, or move the file away (its lookup codes are still "
                        "owed to the staff it names)"
                    ).format(path=existing)
                )

    table = read_table(
        staff_file, required=REQUIRED_COLUMNS, known=KNOWN_COLUMNS, what="staff file"
    )
    for warning in table.warnings:
        st.errors.print(
            _("warning: {warning}").format(warning=warning),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    parsed: dict[int, Row | Outcome] = {r.line: parse_record(table, r) for r in table.records}
    mark_repeated_refs(table, parsed)

    previous: dict[int, Outcome] = {}
    recorded_before: dict[str, str] = {}
    if resume is not None:
        previous = load_results(resume, table)
        recorded_before = load_codes(codes_path)

    outcomes: dict[int, Outcome] = {}
    rows: list[Row] = []
    for line, item in parsed.items():
        before = previous.get(line)
        if before is not None and before.status in CHECKED:
            outcomes[line] = before  # checked by the earlier run: kept as it is
            continue
        earlier_consent = (before.consent_id if before else "") or recorded_before.get(
            item.staff_ref, ""
        )
        if isinstance(item, Outcome):
            item.consent_id = item.consent_id or earlier_consent  # never forget a consent
            outcomes[line] = item
            continue
        if item.consent_id is None and earlier_consent:
            item.consent_id, item.reused = earlier_consent, True
        if item.consent_id is None and before is not None and CONSENT_UNKNOWN in before.error:
            outcomes[line] = before
            continue
        if item.consent_id is None:
            problem = consent_problem(table, item, opts)
            if problem is not None:
                outcomes[line] = problem
                continue
        rows.append(item)
    for line in sorted(o.line for o in outcomes.values() if o.status == "invalid"):
        st.errors.print(
            _("line {line}: skipped - {error}").format(line=line, error=outcomes[line].error),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    needing = [r for r in rows if r.consent_id is None]
    refuse_shared_forms(needing, opts)

    client = st.client()
    if needing or max_checks is not None:
        opts.max_checks = _policy_allowance(client, max_checks)
    if request_disclosure:
        # Before any check is spent: an organisation key that changed since it was pinned
        # would stop the sealing after the checks, and their consents' checks would be lost.
        client.verify_directory()

    codes_file = CodesFile(codes_path, table.delimiter)
    run = Run(table=table, rows=rows, outcomes=outcomes, codes=codes_file)
    write_results(results_path, run.all_outcomes(), table.delimiter)
    try:
        with (
            interrupt_after_batch() as stop_requested,
            Progress(
                TextColumn(_("checking")),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=st.errors,
                disable=st.json_output,
                transient=True,
            ) as progress,
        ):
            run.stop_requested = stop_requested
            task = progress.add_task("rows", total=len(rows))
            for batch in _batches(rows, batch_size):
                try:
                    ready = record_missing_consents(client, batch, opts, run)
                    if run.stopped is None and not stop_requested():
                        check_rows(client, ready, opts, run)
                except ProtocolViolation as exc:
                    run.stopped = exc
                run.codes.sync()
                write_results(results_path, run.all_outcomes(), table.delimiter)
                progress.advance(task, len(batch))
                if run.stopped is not None or stop_requested():
                    run.interrupted = run.stopped is None
                    break
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.codes.close()
        # Whatever stopped the run, the results account for every line.
        write_results(results_path, run.all_outcomes(), table.delimiter)

    final = run.all_outcomes()
    counts = Counter(o.status for o in final)
    data: dict[str, Any] = {
        "rows": len(table.records),
        "results": str(results_path),
        **{status: counts[status] for status in STATUSES},
        "consents_recorded": run.recorded,
        "consents_reused": sum(1 for r in rows if r.reused),
    }
    if run.recorded:
        data["lookup_codes"] = str(codes_path)
    if request_disclosure:
        data["disclosure_requests"] = sum(
            len(o.disclosure_requests.split(";")) for o in final if o.disclosure_requests
        )
    code: int = int(exit_code(counts))
    if run.stopped is not None:
        security = isinstance(run.stopped, ProtocolViolation)
        data["stopped"] = {
            "kind": type(run.stopped).__name__,
            "message": ("security check failed, not continuing: " if security else "")
            + str(run.stopped),
        }
        code = int(exit_code_for(run.stopped))
    elif run.interrupted:
        data["stopped"] = {"kind": "Interrupted", "message": "interrupted (Ctrl-C)"}
        code = INTERRUPTED
    emit(st, data, lambda: _summary(st, data))
    if code:
        raise typer.Exit(code)
