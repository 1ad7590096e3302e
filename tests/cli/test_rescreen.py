"""`refcheck rescreen` on a 1,000-row staff list: malformed rows are reported with their line
number and skipped, every other row is checked, and the results file accounts for every row."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from client_sdk.cli import ExitCode
from tests.cli.conftest import Run, fresh_person
from tests.cli.test_commands import consent, register

pytestmark = pytest.mark.slow

FORM = hashlib.sha256(b"rescreening form").hexdigest()
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
    "self_declared_finding",
]


def row_for(ref: str, person: dict[str, str], **extra: str) -> list[str]:
    values = {"staff_ref": ref, "self_declared_finding": "no", **person, **extra}
    return [values.get(column, "") for column in HEADER]


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
    }
    for index, row in malformed.items():
        rows[index] = row
    staff = tmp_path / "staff.csv"
    with staff.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)

    out = tmp_path / "results.csv"
    result = run(
        "rescreen", str(staff), "--out", str(out), "--record-consents", "--form-sha256", FORM,
        "--batch-size", "250",
        as_="org-b-hr",
    )  # fmt: skip
    assert result.exit_code == ExitCode.MATCH, result.output
    for index in malformed:
        assert f"line {index + 2}: skipped" in result.stderr
    assert perpetrator["full_name"] not in result.output
    assert perpetrator["national_id"] not in result.output

    with out.open(newline="") as fh:
        results = list(csv.DictReader(fh))
    assert [int(r["line"]) for r in results] == list(range(2, 1002))  # every row, in order
    by_line = {int(r["line"]): r for r in results}
    assert {by_line[i + 2]["status"] for i in malformed} == {"invalid"}
    assert by_line[12]["status"] == by_line[13]["status"] == "match"
    assert by_line[12]["holder_orgs"] == "org-a" and by_line[12]["entry_ids"]
    assert by_line[22]["status"] == "no_match" and by_line[22]["consent_id"] == precorded
    assert by_line[23]["status"] == "error" and "consent-withdrawn" in by_line[23]["error"]
    counts = Counter(r["status"] for r in results)
    assert counts == {"no_match": 990, "match": 2, "invalid": 7, "error": 1}
    assert "Re-screening summary" in result.stdout


def test_rescreen_with_only_skipped_rows_exits_12_and_json_summary(
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
    assert "line 2: skipped - no consent_id" in result.stderr


def test_rescreen_refuses_a_file_without_the_required_columns(run: Run, tmp_path: Path) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_text("name,dob\nx,y\n")
    result = run("rescreen", str(staff), "--out", str(tmp_path / "o.csv"), as_="org-b-hr")
    assert result.exit_code == ExitCode.USAGE
    assert "staff_ref" in result.output


def test_rescreen_with_request_disclosure_asks_the_holder_of_each_match(
    run: Run, tmp_path: Path, person_file: Callable[[dict[str, str]], str]
) -> None:
    rng = random.Random(20261129)
    perpetrator = fresh_person(rng)
    case_id = register(run, person_file, perpetrator)
    staff = tmp_path / "staff.csv"
    with staff.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerow(row_for("R1", fresh_person(rng)))
        writer.writerow(row_for("R2", perpetrator))
        writer.writerow(row_for("R3", fresh_person(rng)))
    out = tmp_path / "results.csv"
    summary = run.json(
        "rescreen", str(staff), "--out", str(out), "--record-consents", "--form-sha256", FORM,
        "--request-disclosure", "--attach-details",
        as_="org-b-hr", code=ExitCode.MATCH,
    )  # fmt: skip
    assert summary["match"] == 1 and summary["no_match"] == 2
    assert summary["disclosure_requests"] == 1
    with out.open(newline="") as fh:
        results = {r["staff_ref"]: r for r in csv.DictReader(fh)}
    assert results["R1"]["disclosure_requests"] == results["R3"]["disclosure_requests"] == ""
    request_id = results["R2"]["disclosure_requests"]
    assert request_id and results["R2"]["error"] == ""
    # The holder sees it, about its case, with the row's details sealed to it and signed.
    shown = run.json("disclosures", "show", request_id, as_="org-a-focal")
    assert shown["case_id"] == case_id and shown["state"] == "requested"
    assert shown["applicant_details"]["signed"] is True
    assert shown["applicant_details"]["national_id"] == perpetrator["national_id"]
    # The row's consent carried the check and the request: one check spent, not two.
    consent = run.json("consent", "show", results["R2"]["consent_id"], as_="org-b-hr")
    assert consent["checks_used"] == 1


def test_rescreen_attach_details_needs_request_disclosure(run: Run, tmp_path: Path) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_text("staff_ref,full_name,date_of_birth,consent_id\n")
    result = run(
        "rescreen", str(staff), "--out", str(tmp_path / "o.csv"), "--attach-details",
        as_="org-b-hr",
    )  # fmt: skip
    assert result.exit_code == ExitCode.USAGE
    assert "--request-disclosure" in result.output
