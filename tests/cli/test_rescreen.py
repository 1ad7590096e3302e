"""`refcheck rescreen` against a real server: every input line is in the results with its line
number and one of five statuses; each consent recorded gets the policy's re-screening allowance
and its lookup code in an owner-only file; a run stopped half-way (server gone, Ctrl-C) prints
its summary and `--resume` finishes it without recording any consent twice.

The server going away and Ctrl-C are produced for real: `Relay` is a TCP relay between the CLI
and the live server that cuts the connection, or sends this process SIGINT, when it sees the
N-th request of a kind go through it.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import json
import os
import random
import signal
import socket
import stat
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Literal

import openpyxl
import pytest

from client_sdk import Client
from client_sdk.cli import ExitCode
from tests.cli.conftest import Run, fresh_person
from tests.cli.test_commands import consent, register
from tests.sdk.live import LiveServer

pytestmark = pytest.mark.slow

STATUSES = {"match", "possible_match", "no_match", "invalid", "not_checked"}
HEADER = [
    "staff_ref",
    "full_name",
    "date_of_birth",
    "nationality",
    "national_id",
    "passport",
    "email",
    "phone",
    "consent_id",
    "form_sha256",
    "self_declared_finding",
]
POLICY_RESCREENING_CHECKS = 53  # policies/network.toml, [consent_purposes.rescreening]


def flat(text: str) -> str:
    """Output as one line: rich wraps long messages at the terminal's width."""
    return " ".join(text.split())


def form_of(ref: str) -> str:
    """The SHA-256 of the form `ref` signed: each person's own."""
    return hashlib.sha256(f"signed form of {ref}".encode()).hexdigest()


def row_for(ref: str, person: dict[str, str], **extra: str) -> list[str]:
    values = {
        "staff_ref": ref,
        "self_declared_finding": "no",
        "form_sha256": form_of(ref) if ref else "",
        **person,
        **extra,
    }
    return [values.get(column, "") for column in HEADER]


def write_staff(path: Path, rows: list[list[str]], *, delimiter: str = ",") -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def read_results(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    return read_excel_csv(path, delimiter)


def read_codes(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    return read_excel_csv(path, delimiter)


def read_excel_csv(path: Path, delimiter: str) -> list[dict[str, str]]:
    """The files HR opens in Excel start with exactly one UTF-8 BOM (without it, Excel on
    Windows reads them in the machine's code page and garbles names)."""
    data = path.read_bytes()
    assert data.startswith(codecs.BOM_UTF8) and not data[3:].startswith(codecs.BOM_UTF8), path
    return list(
        csv.DictReader(io.StringIO(data[3:].decode("utf-8"), newline=""), delimiter=delimiter)
    )


def staff_of(tmp_path: Path, count: int, seed: int) -> tuple[Path, list[dict[str, str]]]:
    rng = random.Random(seed)
    people = [fresh_person(rng) for _ in range(count)]
    staff = write_staff(
        tmp_path / "staff.csv", [row_for(f"T{seed}-{i}", p) for i, p in enumerate(people)]
    )
    return staff, people


# -- every line, five statuses -------------------------------------------------------------


def test_rescreen_of_a_thousand_rows_with_malformed_ones(
    run: Run, tmp_path: Path, person_file: Callable[[dict[str, str]], str]
) -> None:
    rng = random.Random(20261123)
    perpetrator = fresh_person(rng)
    register(run, person_file, perpetrator)
    withdrawn = consent(run, "W-1")
    run.json("consent", "withdraw", withdrawn, as_="org-b-hr")
    precorded = consent(run, "P-1")

    rows: list[list[str]] = [row_for(f"S{i:04d}", fresh_person(rng)) for i in range(1000)]
    # Line numbers are 1-based and the header is line 1, so rows[i] is on line i + 2.
    rows[10] = row_for("S0010", perpetrator)
    rows[11] = row_for(
        "S0011",
        dict(
            perpetrator,
            national_id="-".join(perpetrator["national_id"][i : i + 4] for i in range(0, 16, 4)),
        ),
    )
    rows[20] = row_for("S0020", fresh_person(rng), consent_id=precorded)
    rows[21] = row_for("S0021", fresh_person(rng), consent_id=withdrawn)
    malformed = {
        100: row_for("S0100", dict(fresh_person(rng), date_of_birth="31/12/1990")),
        200: row_for("S0200", dict(fresh_person(rng), full_name="")),
        300: [*row_for("S0300", fresh_person(rng)), "surplus"],
        400: row_for("S0400", fresh_person(rng))[:4],
        500: row_for("S0500", fresh_person(rng), consent_id="not-a-consent"),
        600: row_for("S0600", fresh_person(rng), self_declared_finding=""),
        700: row_for("", fresh_person(rng)),
        800: row_for("S0800", dict(fresh_person(rng), national_id="3.20123E+15")),
    }
    for index, row in malformed.items():
        rows[index] = row
    staff = write_staff(tmp_path / "staff.csv", rows)

    out = tmp_path / "results.csv"
    result = run(
        "rescreen", str(staff), "--out", str(out), "--record-consents", "--batch-size", "250",
        as_="org-b-hr",
    )  # fmt: skip
    assert result.exit_code == ExitCode.MATCH, result.output
    for index in malformed:
        assert f"line {index + 2}: skipped" in result.stderr
    assert "line 102: skipped - column 3: date_of_birth must be an ISO date" in result.stderr
    assert "line 802: skipped - column 5 (national_id): Excel wrote this number" in result.stderr
    assert perpetrator["full_name"] not in result.output
    assert perpetrator["national_id"] not in result.output

    results = read_results(out)
    assert [int(r["line"]) for r in results] == list(range(2, 1002))  # every row, in order
    by_line = {int(r["line"]): r for r in results}
    assert {by_line[i + 2]["status"] for i in malformed} == {"invalid"}
    assert all(by_line[i + 2]["error"] for i in malformed)
    assert by_line[12]["status"] == by_line[13]["status"] == "match"
    assert by_line[12]["holder_orgs"] == "org-a" and by_line[12]["entry_ids"]
    assert by_line[22]["status"] == "no_match" and by_line[22]["consent_id"] == precorded
    assert by_line[23]["status"] == "not_checked" and "consent-withdrawn" in by_line[23]["error"]
    counts = Counter(r["status"] for r in results)
    assert counts == {"no_match": 989, "match": 2, "invalid": 8, "not_checked": 1}
    assert "Re-screening summary" in result.stdout

    # One consent per row that lacked one, each with the policy's re-screening allowance, and
    # each lookup code in the owner-only codes file, for that row's staff_ref.
    codes_file = tmp_path / "results.lookup-codes.csv"
    assert stat.S_IMODE(codes_file.stat().st_mode) == 0o600
    codes = read_codes(codes_file)
    recorded = {r["staff_ref"]: r for r in results if r["status"] in {"match", "no_match"}}
    del recorded["S0020"]  # its consent came with the file
    assert sorted(c["staff_ref"] for c in codes) == sorted(recorded)
    assert all(c["consent_id"] == recorded[c["staff_ref"]]["consent_id"] for c in codes)
    receipt = run.json("consent", "show", by_line[12]["consent_id"], as_="org-b-hr")
    assert receipt["max_checks"] == POLICY_RESCREENING_CHECKS and receipt["checks_used"] == 1
    assert receipt["purpose"] == "rescreening"
    assert receipt["form_sha256"] == form_of("S0010")


def test_rescreen_with_only_invalid_rows_exits_12_and_json_summary(
    run: Run, tmp_path: Path
) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_text(
        "staff_ref,full_name,date_of_birth,consent_id\n"
        "A1,Budi Santoso Pratama,1980-02-02,\n"
        "A2,,1980-02-02,\n"
    )
    out = tmp_path / "out.csv"
    result = run("--json", "rescreen", str(staff), "--out", str(out), as_="org-b-hr")
    assert result.exit_code == ExitCode.PARTIAL, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 2 and summary["invalid"] == 2
    assert summary["consents_recorded"] == 0 and "stopped" not in summary
    assert "line 2: skipped - column 4 (consent_id): no consent_id" in result.stderr


def test_rescreen_refuses_a_file_without_the_required_columns(run: Run, tmp_path: Path) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_text("name,dob\nx,y\n")
    result = run("rescreen", str(staff), "--out", str(tmp_path / "o.csv"), as_="org-b-hr")
    assert result.exit_code == ExitCode.USAGE
    assert "staff_ref" in result.output


MALFORMED_FILES: dict[str, bytes] = {
    "unclosed quote": (
        b"staff_ref,full_name,date_of_birth\n"
        b'M1,"Budi Santoso,1990-01-01\n'
        b"M2,Citra Lestari,1991-02-02\n"
        b"M3,Dian Utami,1992-03-03\n"
    ),
    "quote across lines": (
        b"staff_ref;full_name;date_of_birth\r\n"
        b'M1;"Budi\r\nSantoso";1990-01-01\r\n'
        b"M2;Citra Lestari;1991-02-02\r\n"
    ),
    "field counts": (
        b"staff_ref\tfull_name\tdate_of_birth\n"
        b"M1\tBudi\t1990-01-01\textra\n"
        b"M2\tCitra\n"
        b"\n"
        b"\t\t\n"
        b"M3\tDian\t1992-03-03\n"
    ),
    "bytes": (
        b"\xef\xbb\xbfstaff_ref,full_name,date_of_birth\n"
        b"M1,Jos\xe9 Mar\xeda,1990-01-01\n"
        b"M2,\x81\x8d,1991-02-02\n"
        b"\x00\x00\x00\n"
        b"M3,Dian,1992-03-03"
    ),
    "repeated staff_ref": (
        b"staff_ref,full_name,date_of_birth\n"
        b"M1,Budi,1990-01-01\n"
        b"M1,Citra,1991-02-02\n"
        b"M2,Dian,1992-03-03\n"
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_FILES))
def test_every_line_of_a_malformed_file_is_in_the_results(
    run: Run, tmp_path: Path, name: str
) -> None:
    data = MALFORMED_FILES[name]
    staff = tmp_path / "staff.csv"
    staff.write_bytes(data)
    out = tmp_path / "results.csv"
    result = run("--json", "rescreen", str(staff), "--out", str(out), as_="org-b-hr")
    assert result.exit_code == ExitCode.PARTIAL, result.output
    lines_in = len(data.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")) - 1
    delimiter = {"quote across lines": ";", "field counts": "\t"}.get(name, ",")
    results = read_results(out, delimiter)
    assert [int(r["line"]) for r in results] == list(range(2, lines_in + 2))
    assert {r["status"] for r in results} <= STATUSES
    assert all(r["error"] for r in results)  # nothing checked here: each says why
    summary = json.loads(result.stdout)
    assert summary["rows"] == lines_in == sum(summary[s] for s in STATUSES)


def test_the_line_after_an_unclosed_quote_is_checked(run: Run, tmp_path: Path) -> None:
    rng = random.Random(20261201)
    first, second = fresh_person(rng), fresh_person(rng)
    staff = tmp_path / "staff.csv"
    rows = [row_for("Q1", first), row_for("Q2", second)]
    text = ",".join(HEADER) + "\n" + ",".join(rows[0]).replace("Q1,", 'Q1,"', 1) + "\n"
    staff.write_text(text + ",".join(rows[1]) + "\n")
    out = tmp_path / "results.csv"
    result = run("rescreen", str(staff), "--out", str(out), "--record-consents", as_="org-b-hr")
    assert result.exit_code == ExitCode.PARTIAL, result.output
    quoted, after = read_results(out)
    assert quoted["status"] == "invalid" and "column 2 (full_name)" in quoted["error"]
    assert after["status"] == "no_match" and after["staff_ref"] == "Q2"


# -- real-world files ------------------------------------------------------------------------


def test_rescreen_reads_excel_csv_in_windows_1252_with_semicolons(run: Run, tmp_path: Path) -> None:
    rng = random.Random(20261202)
    person = dict(fresh_person(rng), full_name="Andr\u00e9 Fran\u00e7ois Wijaya")
    staff = tmp_path / "staff.csv"
    lines = [";".join(HEADER), ";".join(row_for("W1", person))]
    staff.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    out = tmp_path / "results.csv"
    result = run("rescreen", str(staff), "--out", str(out), "--record-consents", as_="org-b-hr")
    assert result.exit_code == ExitCode.OK, result.output
    assert "Windows-1252" in result.stderr and "Traceback" not in result.output
    # Written back with the delimiter Excel in that locale expects.
    (row,) = read_results(out, ";")
    assert row["status"] == "no_match"
    (code,) = read_codes(tmp_path / "results.lookup-codes.csv", ";")
    assert code["staff_ref"] == "W1" and code["consent_id"] == row["consent_id"]


def test_rescreen_reads_an_xlsx_workbook(run: Run, tmp_path: Path) -> None:
    rng = random.Random(20261203)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    for ref in ("X1", "X2"):
        person = fresh_person(rng)
        cells: list[object] = list(row_for(ref, person))
        # A date cell, as Excel keeps a typed date.
        cells[HEADER.index("date_of_birth")] = date.fromisoformat(person["date_of_birth"])
        sheet.append(cells)
    staff = tmp_path / "staff.xlsx"
    book.save(staff)
    out = tmp_path / "results.csv"
    summary = run.json(
        "rescreen", str(staff), "--out", str(out), "--record-consents", as_="org-b-hr"
    )
    assert summary["no_match"] == 2 and summary["consents_recorded"] == 2
    assert [r["line"] for r in read_results(out)] == ["2", "3"]


# -- consents: the policy's allowance, each person's own form, the lookup codes ---------------


def test_rescreen_consents_leave_checks_for_the_disclosure_request(
    run: Run, tmp_path: Path, person_file: Callable[[dict[str, str]], str]
) -> None:
    rng = random.Random(20261204)
    perpetrator = fresh_person(rng)
    register(run, person_file, perpetrator)
    staff = write_staff(tmp_path / "staff.csv", [row_for("D1", perpetrator)])
    out = tmp_path / "results.csv"
    run.json(
        "rescreen", str(staff), "--out", str(out), "--record-consents",
        as_="org-b-hr", code=ExitCode.MATCH,
    )  # fmt: skip
    (row,) = read_results(out)
    # The follow-up request checks again under the same consent: it has checks left.
    asked = run.json(
        "disclosures", "request", "--consent", row["consent_id"], "--person",
        person_file(perpetrator), as_="org-b-hr",
    )  # fmt: skip
    assert len(asked["items"]) == 1
    assert asked["checks_used"] == 2 and asked["max_checks"] == POLICY_RESCREENING_CHECKS


def test_max_checks_above_the_policy_is_refused_and_below_it_is_used(
    run: Run, tmp_path: Path
) -> None:
    staff, _ = staff_of(tmp_path, 1, 20261205)
    out = tmp_path / "results.csv"
    result = run(
        "rescreen", str(staff), "--out", str(out), "--record-consents",
        "--max-checks", str(POLICY_RESCREENING_CHECKS + 1), as_="org-b-hr",
    )  # fmt: skip
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"re-screening allowance ({POLICY_RESCREENING_CHECKS} checks" in flat(result.output)
    assert not (tmp_path / "results.lookup-codes.csv").exists() and not out.exists()

    run.json(
        "rescreen", str(staff), "--out", str(out), "--record-consents", "--max-checks", "2",
        as_="org-b-hr",
    )  # fmt: skip
    (row,) = read_results(out)
    assert run.json("consent", "show", row["consent_id"], as_="org-b-hr")["max_checks"] == 2


def test_one_form_hash_for_every_row_is_refused_unless_said(run: Run, tmp_path: Path) -> None:
    rng = random.Random(20261206)
    one_form = form_of("everyone")
    rows = [row_for(f"F{i}", fresh_person(rng), form_sha256=one_form) for i in range(3)]
    staff = write_staff(tmp_path / "staff.csv", rows)
    out = tmp_path / "results.csv"

    result = run("rescreen", str(staff), "--out", str(out), "--record-consents", as_="org-b-hr")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "lines 2, 3, 4 have the same form_sha256" in flat(result.output)
    assert not (tmp_path / "results.lookup-codes.csv").exists()  # nothing was recorded

    result = run(
        "rescreen", str(staff), "--out", str(out), "--record-consents",
        "--form-sha256", one_form, as_="org-b-hr",
    )  # fmt: skip
    assert result.exit_code == ExitCode.USAGE and "--same-form-for-all" in flat(result.output)

    blank = write_staff(
        tmp_path / "blank.csv",
        [row_for(f"G{i}", fresh_person(rng), form_sha256="") for i in (1, 2)],
    )
    summary = run.json(
        "rescreen", str(blank), "--out", str(tmp_path / "g.csv"), "--record-consents",
        "--same-form-for-all", "--form-sha256", one_form, as_="org-b-hr",
    )  # fmt: skip
    assert summary["no_match"] == 2
    consent_id = read_results(tmp_path / "g.csv")[0]["consent_id"]
    assert run.json("consent", "show", consent_id, as_="org-b-hr")["form_sha256"] == one_form


def test_lookup_codes_are_the_applicants_codes(run: Run, tmp_path: Path) -> None:
    staff, _ = staff_of(tmp_path, 2, 20261207)
    out = tmp_path / "results.csv"
    run.json("rescreen", str(staff), "--out", str(out), "--record-consents", as_="org-b-hr")
    codes = tmp_path / "results.lookup-codes.csv"
    assert stat.S_IMODE(codes.stat().st_mode) == 0o600
    by_ref = {r["staff_ref"]: r for r in read_results(out)}
    for entry in read_codes(codes):
        found = run.json("lookup", entry["lookup_code"], as_="org-b-hr")
        assert (
            found["consent_id"] == entry["consent_id"] == by_ref[entry["staff_ref"]]["consent_id"]
        )
        assert len(found["checks"]) == 1
    assert entry["lookup_code"] not in out.read_text()  # the results file is shared more widely

    # A second run that would record consents again for the same people is refused.
    again = run("rescreen", str(staff), "--out", str(out), "--record-consents", as_="org-b-hr")
    assert again.exit_code == ExitCode.USAGE and "--resume" in flat(again.output)


def test_sdk_record_consent_returns_the_lookup_code(live: LiveServer, tmp_path: Path) -> None:
    with Client.from_credentials_file(
        live.credentials("org-b-hr"), pin_file=tmp_path / "pins.json"
    ) as client:
        consent_id = client.record_consent(
            applicant_ref="SDK-1",
            purpose="rescreening",
            position_ref="POS-SDK",
            form_sha256=form_of("SDK-1"),
            self_declared_finding=False,
        )
        assert isinstance(consent_id, str) and consent_id.lookup_code
        assert consent_id.lookup_code not in repr(consent_id)
        found = client.consent_lookup(consent_id.lookup_code)
        assert found.consent_id == consent_id


# -- stopping and resuming ------------------------------------------------------------------


class Relay:
    """A TCP relay to the live server. After `after` requests starting with `trigger` have gone
    through, it either cuts every connection and stops listening (the server is gone), or sends
    this process SIGINT once and carries on (Ctrl-C)."""

    def __init__(
        self, target: str, trigger: bytes, after: int, action: Literal["cut", "sigint"]
    ) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.trigger, self.after, self.action = trigger, after, action
        self.seen = 0
        self.cut = threading.Event()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if outbound and self.trigger in data:
                    with self.lock:
                        self.seen += data.count(self.trigger)
                        fire = self.seen > self.after
                    if fire and self.action == "cut":
                        self.close()
                        return
                    if fire and self.action == "sigint" and self.seen - 1 == self.after:
                        # Only while rescreen's own handler is installed: never kill pytest.
                        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
                            os.kill(os.getpid(), signal.SIGINT)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.cut.set()
        with self.lock:
            for s in [self.listener, *self.sockets]:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@contextlib.contextmanager
def relay(
    live: LiveServer, trigger: bytes, after: int, action: Literal["cut", "sigint"]
) -> Iterator[Relay]:
    proxy = Relay(live.base_url, trigger, after, action)
    try:
        yield proxy
    finally:
        proxy.close()


def test_ctrl_c_prints_the_summary_and_resume_finishes_the_run(
    run: Run, live: LiveServer, tmp_path: Path
) -> None:
    staff, _ = staff_of(tmp_path, 10, 20261208)
    out = tmp_path / "results.csv"
    with relay(live, b"POST /v1/checks ", after=4, action="sigint") as proxy:
        stopped = run(
            "--base-url", proxy.url, "rescreen", str(staff), "--out", str(out),
            "--record-consents", "--batch-size", "4", as_="org-b-hr",
        )  # fmt: skip
    assert stopped.exit_code == 130, stopped.output
    assert "Re-screening summary" in stopped.stdout and "interrupted (Ctrl-C)" in flat(
        stopped.stdout
    )
    results = read_results(out)
    assert len(results) == 10
    # The batch in flight when Ctrl-C came was finished; the rest was not started.
    assert Counter(r["status"] for r in results) == {"no_match": 8, "not_checked": 2}
    assert all(r["error"] == "the run stopped before this row" for r in results[8:])
    assert len(read_codes(tmp_path / "results.lookup-codes.csv")) == 8

    summary = run.json(
        "rescreen", str(staff), "--resume", str(out), "--record-consents", as_="org-b-hr"
    )
    assert summary["no_match"] == 10 and summary["consents_recorded"] == 2
    codes = read_codes(tmp_path / "results.lookup-codes.csv")
    assert len(codes) == len({c["staff_ref"] for c in codes}) == 10


def test_server_gone_half_way_then_resume_reuses_the_consents_recorded(
    run: Run, live: LiveServer, tmp_path: Path
) -> None:
    staff, _ = staff_of(tmp_path, 8, 20261209)
    out = tmp_path / "results.csv"
    with relay(live, b"POST /v1/checks ", after=3, action="cut") as proxy:
        stopped = run(
            "--json", "--base-url", proxy.url, "rescreen", str(staff), "--out", str(out),
            "--record-consents", "--batch-size", "3", as_="org-b-hr",
        )  # fmt: skip
    assert stopped.exit_code == ExitCode.UNAVAILABLE, stopped.output
    summary = json.loads(stopped.stdout)
    assert summary["stopped"]["kind"] == "TransportError"
    assert summary["no_match"] == 3 and summary["not_checked"] == 5
    assert summary["consents_recorded"] == 6  # the second batch's were recorded, not checked
    results = read_results(out)
    assert [int(r["line"]) for r in results] == list(range(2, 10))
    unchecked = [r for r in results if r["status"] == "not_checked"]
    assert sum(1 for r in unchecked if r["consent_id"]) == 3

    summary = run.json(
        "rescreen", str(staff), "--resume", str(out), "--record-consents", as_="org-b-hr"
    )
    assert summary["no_match"] == 8
    assert summary["consents_reused"] == 3 and summary["consents_recorded"] == 2
    codes = read_codes(tmp_path / "results.lookup-codes.csv")
    assert len(codes) == len({c["staff_ref"] for c in codes}) == 8
    final = {r["staff_ref"]: r for r in read_results(out)}
    assert {c["consent_id"] for c in codes} == {r["consent_id"] for r in final.values()}
    reused = next(r for r in unchecked if r["consent_id"])
    assert final[reused["staff_ref"]]["consent_id"] == reused["consent_id"]
    shown = run.json("consent", "show", reused["consent_id"], as_="org-b-hr")
    assert shown["checks_used"] == 1  # the cut check never reached the server


def test_a_consent_whose_answer_was_lost_is_never_recorded_again(
    run: Run, live: LiveServer, tmp_path: Path
) -> None:
    staff, _ = staff_of(tmp_path, 4, 20261210)
    out = tmp_path / "results.csv"
    with relay(live, b"POST /v1/consents ", after=1, action="cut") as proxy:
        stopped = run(
            "--base-url", proxy.url, "rescreen", str(staff), "--out", str(out),
            "--record-consents", as_="org-b-hr",
        )  # fmt: skip
    assert stopped.exit_code == ExitCode.UNAVAILABLE, stopped.output
    assert "Re-screening summary" in stopped.stdout
    lost = read_results(out)[1]
    assert lost["status"] == "not_checked" and lost["error"].startswith("consent-unknown:")

    summary = run.json(
        "rescreen", str(staff), "--resume", str(out), "--record-consents",
        as_="org-b-hr", code=ExitCode.PARTIAL,
    )  # fmt: skip
    assert summary["no_match"] == 3 and summary["not_checked"] == 1
    assert summary["consents_reused"] == 1 and summary["consents_recorded"] == 2
    refs = [c["staff_ref"] for c in read_codes(tmp_path / "results.lookup-codes.csv")]
    assert lost["staff_ref"] not in refs and len(refs) == len(set(refs)) == 3


def test_resume_refuses_the_results_of_another_staff_file(run: Run, tmp_path: Path) -> None:
    staff, _ = staff_of(tmp_path, 2, 20261211)
    out = tmp_path / "results.csv"
    run.json("rescreen", str(staff), "--out", str(out), "--record-consents", as_="org-b-hr")
    other = tmp_path / "other"
    other.mkdir()
    other_staff, _ = staff_of(other, 2, 20261212)
    result = run("rescreen", str(other_staff), "--resume", str(out), as_="org-b-hr")
    assert result.exit_code == ExitCode.USAGE
    assert "another staff_ref than in the results file" in flat(result.output)
    longer, _ = staff_of(other, 3, 20261211)
    result = run("rescreen", str(longer), "--resume", str(out), as_="org-b-hr")
    assert result.exit_code == ExitCode.USAGE and "does not account for" in flat(result.output)


# -- disclosure requests from the same check ------------------------------------------------


def test_rescreen_with_request_disclosure_asks_the_holder_of_each_match(
    run: Run, tmp_path: Path, person_file: Callable[[dict[str, str]], str]
) -> None:
    rng = random.Random(20261129)
    perpetrator = fresh_person(rng)
    case_id = register(run, person_file, perpetrator)
    staff = write_staff(
        tmp_path / "staff.csv",
        [
            row_for("R1", fresh_person(rng)),
            row_for("R2", perpetrator),
            row_for("R3", fresh_person(rng)),
        ],
    )
    out = tmp_path / "results.csv"
    summary = run.json(
        "rescreen", str(staff), "--out", str(out), "--record-consents", "--request-disclosure",
        as_="org-b-hr", code=ExitCode.MATCH,
    )  # fmt: skip
    assert summary["match"] == 1 and summary["no_match"] == 2
    assert summary["disclosure_requests"] == 1
    results = {r["staff_ref"]: r for r in read_results(out)}
    assert results["R1"]["disclosure_requests"] == results["R3"]["disclosure_requests"] == ""
    request_id = results["R2"]["disclosure_requests"]
    assert request_id and results["R2"]["error"] == ""
    # The holder sees it, about its case, with the row's details sealed to it and signed.
    shown = run.json("disclosures", "show", request_id, as_="org-a-focal")
    assert shown["case_id"] == case_id and shown["state"] == "requested"
    assert shown["applicant_details"]["signed"] is True
    assert shown["applicant_details"]["national_id"] == perpetrator["national_id"]
    # The row's consent carried the check and the request: one check spent, not two.
    receipt = run.json("consent", "show", results["R2"]["consent_id"], as_="org-b-hr")
    assert receipt["checks_used"] == 1


def test_rescreen_attach_details_needs_request_disclosure(run: Run, tmp_path: Path) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_text("staff_ref,full_name,date_of_birth,consent_id\n")
    result = run(
        "rescreen", str(staff), "--out", str(tmp_path / "o.csv"), "--attach-details",
        as_="org-b-hr",
    )  # fmt: skip
    assert result.exit_code == ExitCode.USAGE
    assert "--request-disclosure" in result.output
