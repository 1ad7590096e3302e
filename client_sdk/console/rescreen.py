"""Re-screening in the console: upload the staff list (CSV from Excel or .xlsx, as
`refcheck rescreen` reads it), watch a progress bar, download the results.

The rows are checked by the same code as `refcheck rescreen` (`client_sdk.cli.rescreen`), in a
background thread, in batches, under the consents of the `consent_id` column. With "record
consents" ticked, as with `refcheck rescreen --record-consents`, a row without one first gets a
re-screening consent: each row's signed-form SHA-256 from its `form_sha256` column and the
person's own `self_declared_finding` answer; one hash for every row only with the explicit
"same form for all" choice (two rows sharing a hash are refused otherwise). The new consents'
lookup codes are offered as a CSV download for HR to hand to each person: never in a URL, a
page or a log.

The uploaded file is read from a private temporary file that is deleted at once. The results and
lookup codes are kept in this process's memory only (never on disk), until the console stops:
a lock does not drop them, because the server cannot show a lookup code again.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from client_sdk._client import Client
from client_sdk.cli.rescreen import (
    CODES_COLUMNS,
    KNOWN_COLUMNS,
    OUTPUT_COLUMNS,
    REQUIRED_COLUMNS,
    CodesFile,
    Options,
    Outcome,
    Row,
    Run,
    _policy_allowance,
    check_rows,
    consent_problem,
    mark_repeated_refs,
    parse_record,
    record_missing_consents,
)
from client_sdk.console.i18n import gettext_ as _
from client_sdk.console.vault import sha256_upload
from client_sdk.errors import ProtocolViolation, RefcheckError
from client_sdk.tabular import TableError, read_table

__all__ = ["Job", "MemoryCodes", "RescreenForm", "routes", "shared_form_lines"]

BATCH = 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class MemoryCodes(CodesFile):
    """The new consents' lookup codes, kept in memory for the download (the command line's
    `CodesFile` writes them to an owner-only file instead)."""

    def __init__(self, delimiter: str) -> None:
        super().__init__(Path(os.devnull), delimiter)
        self.rows: list[tuple[str, str, str]] = []

    def add(self, staff_ref: str, lookup_code: str | None, consent_id: str) -> None:
        self.rows.append((staff_ref, lookup_code or "", consent_id))
        self.written += 1

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


class Refused(Exception):
    """The upload cannot start: `message` belongs beside the form field `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class RescreenForm:
    """What the HR officer chose on the form, checked: the options of the run, or the errors
    by field."""

    record_consents: bool = False
    same_form_for_all: bool = False
    form_sha256: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(
        cls, record: bool, same_for_all: bool, typed_hash: str, file_hash: str | None
    ) -> RescreenForm:
        """One hash for every row only with "same form for all", and that choice only when
        recording consents; the hash typed or computed from the uploaded form (equal if both)."""
        out = cls(record_consents=record, same_form_for_all=same_for_all)
        typed = "".join(typed_hash.split()).lower()
        if typed and not _SHA256.match(typed):
            out.errors["form_sha256"] = _(
                "A SHA-256 is 64 hexadecimal characters (0-9, a-f): `refcheck form hash FILE` "
                "prints it."
            )
            return out
        if typed and file_hash and typed != file_hash:
            out.errors["form_sha256"] = _(
                "The SHA-256 typed is not that of the form uploaded: give one of them."
            )
            return out
        one = typed or file_hash or ""
        if same_for_all and not record:
            out.errors["same_form_for_all"] = _(
                'This choice is for recording consents: tick "Record consents" too, or untick it.'
            )
        elif one and not same_for_all:
            out.errors["form_sha256"] = _(
                "Each person signs their own form: put each one's SHA-256 in the form_sha256 "
                'column. One form for everyone only with "Same form for all" ticked.'
            )
        elif same_for_all and not one:
            out.errors["form_sha256"] = _(
                "Upload the one signed form that covers every row, or type its SHA-256."
            )
        out.form_sha256 = one
        return out

    def options(self) -> Options:
        return Options(
            record_consents=self.record_consents,
            form_sha256=self.form_sha256 or None,
            same_form_for_all=self.same_form_for_all,
            request_disclosure=False,
        )


def shared_form_lines(rows: list[Row]) -> list[int]:
    """Lines of the rows to record a consent for whose form_sha256 another such row has too
    (each person signs their own form, so a shared hash is a slip: a column filled down)."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_hash[row.form_sha256].append(row.line)
    return sorted(line for lines in by_hash.values() if len(lines) > 1 for line in lines)


@dataclass
class Job:
    total: int
    done: int = 0
    finished: bool = False
    error: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    delimiter: str = ","
    #: Lookup codes of the consents recorded: (staff_ref, lookup_code, consent_id).
    codes: list[tuple[str, str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out


def _start(
    client: Client,
    lock: threading.RLock,
    data: bytes,
    name: str,
    chosen: RescreenForm,
    job_box: dict[str, Job],
) -> str:
    fd, raw = tempfile.mkstemp(suffix=Path(name).suffix.lower() or ".csv")
    path = Path(raw)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            table = read_table(
                path, required=REQUIRED_COLUMNS, known=KNOWN_COLUMNS, what="staff list"
            )
        except TableError as exc:
            raise Refused("staff_list", str(exc)) from None
    finally:
        path.unlink(missing_ok=True)
    opts = chosen.options()
    parsed: dict[int, Row | Outcome] = {r.line: parse_record(table, r) for r in table.records}
    mark_repeated_refs(table, parsed)
    outcomes: dict[int, Outcome] = {}
    rows: list[Row] = []
    for line, item in parsed.items():
        if isinstance(item, Outcome):
            outcomes[line] = item
        elif item.consent_id is None:
            problem = consent_problem(table, item, opts)
            if problem is not None:
                outcomes[line] = problem
            else:
                rows.append(item)
        else:
            rows.append(item)
    needing = [r for r in rows if r.consent_id is None]
    if not opts.same_form_for_all and (shared := shared_form_lines(needing)):
        shown = ", ".join(str(n) for n in shared[:8]) + (" …" if len(shared) > 8 else "")
        raise Refused(
            "staff_list",
            _(
                "Lines {lines} have the same form_sha256: each person's signed form has its own. "
                "Put the SHA-256 of each signed copy in its row, or, if one signed document "
                'really covers every row, tick "Same form for all". Nothing was recorded.'
            ).format(lines=shown),
        )
    if needing:
        # Refused before any consent is recorded when the policy allows no re-screening.
        opts.max_checks = _policy_allowance(client, None)
    job = Job(total=len(table.records), done=len(outcomes), delimiter=table.delimiter)
    token = secrets.token_urlsafe(16)
    job_box[token] = job
    codes = MemoryCodes(table.delimiter)
    job.codes = codes.rows
    run = Run(table=table, rows=rows, outcomes=outcomes, codes=codes)

    def work() -> None:
        try:
            for start in range(0, len(rows), BATCH):
                batch = rows[start : start + BATCH]
                with lock:
                    try:
                        ready = record_missing_consents(client, batch, opts, run)
                        if run.stopped is None:
                            check_rows(client, ready, opts, run)
                    except ProtocolViolation as exc:
                        run.stopped = exc
                job.done = len(outcomes)
                if run.stopped is not None:
                    job.error = str(run.stopped)
                    break
        except RefcheckError as exc:
            job.error = str(exc)
        finally:
            job.outcomes = run.all_outcomes()
            job.done = job.total
            job.finished = True

    threading.Thread(target=work, name="console-rescreen", daemon=True).start()
    return token


def routes(kit: Any) -> list[Route]:
    page, render, call = kit.page, kit.render, kit.call
    vault = kit.vault

    def jobs() -> dict[str, Job]:
        box: dict[str, Job] = vault.__dict__.setdefault("_jobs", {})
        if vault.session is None:
            box.clear()
        return box

    @page("hr_checker")
    async def rescreen(request: Request, client: Client, form: FormData | None) -> Response:
        errors: dict[str, str] = {}
        values: dict[str, str] = {}
        if form is not None:
            values = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
            values.pop("csrf", None)
            common = form.get("common_form")
            file_hash = None
            if isinstance(common, UploadFile) and common.filename:
                file_hash = sha256_upload(common)
            chosen = RescreenForm.read(
                bool(kit.text(form, "record_consents")),
                bool(kit.text(form, "same_form_for_all")),
                kit.text(form, "form_sha256"),
                file_hash,
            )
            errors = dict(chosen.errors)
            upload = form.get("staff_list")
            if not isinstance(upload, UploadFile) or not upload.filename:
                errors["staff_list"] = _("Choose the staff list to upload.")
            if not errors:
                assert isinstance(upload, UploadFile) and upload.filename
                data = await upload.read()
                try:
                    token = await call(
                        _start, client, vault.lock, data, upload.filename, chosen, jobs()
                    )
                except Refused as exc:
                    errors[exc.field] = exc.message
                else:
                    return RedirectResponse(f"/rescreen/{token}", status_code=303)
        return render(
            request,
            "rescreen.html",
            status=422 if errors else 200,
            errors=errors,
            values=values,
            columns=sorted(KNOWN_COLUMNS),
        )

    def job_of(request: Request) -> Job | None:
        return jobs().get(request.path_params["t"])

    @page("hr_checker")
    async def progress_page(request: Request, client: Client, form: FormData | None) -> Response:
        job = job_of(request)
        if job is None:
            return render(
                request,
                "message.html",
                status=404,
                title=_("Not found"),
                message=_(
                    "This link is no longer valid: the console was locked since. Start again."
                ),
            )
        return render(
            request, "rescreen_job.html", job=job, t=request.path_params["t"], counts=job.counts()
        )

    @page("hr_checker")
    async def progress(request: Request, client: Client, form: FormData | None) -> Response:
        job = job_of(request)
        if job is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"done": job.done, "total": job.total, "finished": job.finished})

    @page("hr_checker")
    async def download(request: Request, client: Client, form: FormData | None) -> Response:
        job = job_of(request)
        if job is None or not job.finished:
            return JSONResponse({"error": "not ready"}, status_code=404)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=OUTPUT_COLUMNS, delimiter=job.delimiter)
        writer.writeheader()
        for outcome in sorted(job.outcomes, key=lambda o: o.line):
            writer.writerow(outcome.as_row())
        return Response(
            out.getvalue().encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="rescreen-results.csv"'},
        )

    @page("hr_checker")
    async def lookup_codes(request: Request, client: Client, form: FormData | None) -> Response:
        job = job_of(request)
        if job is None or not job.finished:
            return JSONResponse({"error": "not ready"}, status_code=404)
        out = io.StringIO()
        writer = csv.writer(out, delimiter=job.delimiter)
        writer.writerow(CODES_COLUMNS)
        writer.writerows(job.codes)
        return Response(
            out.getvalue().encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="lookup-codes.csv"'},
        )

    return [
        Route("/rescreen", rescreen, methods=["GET", "POST"]),
        Route("/rescreen/{t:str}/lookup-codes.csv", lookup_codes),
        Route("/rescreen/{t:str}", progress_page),
        Route("/rescreen/{t:str}/progress", progress),
        Route("/rescreen/{t:str}/results.csv", download),
    ]
