"""Re-screening in the console: upload the staff list (CSV from Excel or .xlsx, as
`refcheck rescreen` reads it), watch a progress bar, download the results.

The rows are checked by the same code as `refcheck rescreen` (`client_sdk.cli.rescreen`), in a
background thread, in batches, under consents already recorded (the `consent_id` column); a row
without one is reported `invalid` (recording consents in bulk stays with the command line).
The uploaded file is read from a private temporary file that is deleted at once, and the results
are kept in memory only, until they are downloaded or the console locks.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from client_sdk._client import Client
from client_sdk.cli.rescreen import (
    KNOWN_COLUMNS,
    OUTPUT_COLUMNS,
    REQUIRED_COLUMNS,
    CodesFile,
    Options,
    Outcome,
    Row,
    Run,
    check_rows,
    consent_problem,
    mark_repeated_refs,
    parse_record,
)
from client_sdk.console.i18n import gettext_ as _
from client_sdk.errors import RefcheckError
from client_sdk.tabular import TableError, read_table

__all__ = ["Job", "routes"]

BATCH = 20


@dataclass
class Job:
    total: int
    done: int = 0
    finished: bool = False
    error: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    delimiter: str = ","

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out


def _start(
    client: Client, lock: threading.RLock, data: bytes, name: str, job_box: dict[str, Job]
) -> str:
    fd, raw = tempfile.mkstemp(suffix=Path(name).suffix.lower() or ".csv")
    path = Path(raw)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        table = read_table(path, required=REQUIRED_COLUMNS, known=KNOWN_COLUMNS, what="staff list")
    finally:
        path.unlink(missing_ok=True)
    opts = Options(request_disclosure=False)
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
    job = Job(total=len(table.records), done=len(outcomes), delimiter=table.delimiter)
    token = secrets.token_urlsafe(16)
    job_box[token] = job
    codes = CodesFile(Path(tempfile.gettempdir()) / "unused-codes.csv", table.delimiter)
    run = Run(table=table, rows=rows, outcomes=outcomes, codes=codes)

    def work() -> None:
        try:
            for start in range(0, len(rows), BATCH):
                batch = rows[start : start + BATCH]
                with lock:
                    check_rows(client, batch, opts, run)
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
        error = None
        if form is not None:
            upload = form.get("staff_list")
            if not isinstance(upload, UploadFile) or not upload.filename:
                error = _("Choose the staff list to upload.")
            else:
                data = await upload.read()
                try:
                    token = await call(_start, client, vault.lock, data, upload.filename, jobs())
                except TableError as exc:
                    error = str(exc)
                else:
                    return RedirectResponse(f"/rescreen/{token}", status_code=303)
        return render(
            request,
            "rescreen.html",
            status=422 if error else 200,
            error=error,
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

    return [
        Route("/rescreen", rescreen, methods=["GET", "POST"]),
        Route("/rescreen/{t:str}", progress_page),
        Route("/rescreen/{t:str}/progress", progress),
        Route("/rescreen/{t:str}/results.csv", download),
    ]
